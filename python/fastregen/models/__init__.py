"""Target models: one registry, one interface.

Every model takes a left-padded ``(batch, length)`` tensor of item ids and
returns ``(batch, length, embed_dim)`` representations; items are scored by
dot product with ``model.item_embedding.weight`` (row 0 = padding). See
`SequentialRecommender` for the conventions (padding, truncation, errors).

>>> from fastregen.models import build_model, available_models
>>> available_models()
['cl4srec', 'fmlp', 'gnn', 'gru4rec', 'hstu', 'llama', 'sasrec']
>>> model = build_model("sasrec", num_items=100)
"""

from .base import (
    SequentialRecommender,
    available_models,
    build_model,
    load_model,
    model_class,
    register,
    save_model,
)
from .generative import HSTU, LlamaRec
from .others import FMLPRec, GRU4Rec
from .sasrec import GNN, CL4SRec, SASRec, transition_graph

__all__ = [
    "SequentialRecommender",
    "available_models",
    "build_model",
    "model_class",
    "register",
    "save_model",
    "load_model",
    "SASRec",
    "CL4SRec",
    "GNN",
    "GRU4Rec",
    "FMLPRec",
    "HSTU",
    "LlamaRec",
    "transition_graph",
]
