"""Training the learned reader: data -> windows -> features -> train loop -> evaluate -> export.

Each step is a module with plain functions that can be run on ten examples; ``rag train-reader`` chains
them (see ``rag/models/reader/README.md`` for the recipe that produced the shipped model).
torch is imported only here, never when answering questions.
"""
