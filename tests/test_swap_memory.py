"""Memory across hot swaps (issue 25): a swap shares the models, which depend on the settings only.
The RSS itself is measured by bench/swap_rss.py (12 swaps: within 10% of after the first)."""

from __future__ import annotations


def test_a_swap_shares_the_embedder_and_the_learned_reader_model(pipeline, seed_index_dir, settings_factory):
    from api.deps import ServiceState
    from api.reload import load_new, release_memory

    state = ServiceState(settings=settings_factory(index_dir=seed_index_dir), pipeline=pipeline)
    fresh = load_new(state)
    assert fresh.index is not pipeline.index  # a new index ...
    assert fresh.embedder is pipeline.embedder  # ... over the same models, not a second copy of each
    assert fresh.reader.model is pipeline.reader.model
    assert (
        fresh.ask("How big is Australia's strategic reserve?").to_dict()["answers"]
        == pipeline.ask("How big is Australia's strategic reserve?").to_dict()["answers"]
    )
    release_memory()  # harmless on any libc
