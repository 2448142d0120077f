"""Past one machine on Ray (the optional extra ``pip install -e ".[ray]"``).

- :mod:`rag.scale.runtime`: start a local Ray or join a cluster, with a bounded wait and one clear error;
- :mod:`rag.scale.ray_index`: ``rag index --ray``: files are read and texts embedded by Ray Data (a pool of
  embedder actors, one ONNX Runtime session each); the index is written exactly as a single-process build;
- :mod:`rag.scale.ray_serve`: ``rag serve --ray --replicas N``: the FastAPI app of :mod:`api.main` as a Ray
  Serve ingress, N replicas each with its own pipeline.

Nothing here is imported unless ``--ray`` is asked for: the default install and paths stay light.
"""
