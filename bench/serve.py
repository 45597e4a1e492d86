"""`python -m bench.serve serve`: the `latentserve` command as a module, so the harness can
start a service subprocess with the repository's interpreter (and under `-m cProfile`)."""

from latentserve.cli import main

if __name__ == "__main__":
    main()
