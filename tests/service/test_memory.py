"""What a served version keeps in memory: no ONNX Runtime arena unless asked for, and the
warm-up's freed pages returned to the OS."""

from __future__ import annotations

from latentserve.registry.bundle.files import Bundle
from latentserve.service.backends.embedded import make_session
from latentserve.service.memory import release_free_memory


def test_sessions_keep_no_memory_arena_unless_asked(tiny_bundle: Bundle) -> None:
    plain = make_session(tiny_bundle.decoder_path, 1)
    assert plain.get_session_options().enable_cpu_mem_arena is False
    arena = make_session(tiny_bundle.decoder_path, 1, memory_arena=True)
    assert arena.get_session_options().enable_cpu_mem_arena is True


def test_release_free_memory_is_safe_to_call_anytime() -> None:
    release_free_memory()
    release_free_memory()
