"""latentserve.core: what every layer shares and nothing else.

The error tree with plain status codes (`errors`), the seeded sampling (`seeding`), the latent
math (`latent_ops`) and the argument checks both share (`checks`), the numpy ↔
`latentserve.v1.Tensor` codec used by both the SDK and the service (`tensors`) and the shared
array types (`arrays`). Depends on numpy and the generated `latentserve.v1` messages
only, so the SDK, the registry, the service and the training code can all import it.
"""
