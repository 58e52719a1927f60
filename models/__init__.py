"""SSM math and torch modules: HiPPO operators, convolution kernels, the SSM layer, the backbone.

`build_layer(name, d_model, d_state=64, **overrides)` makes one registered SSM layer,
`build_model(name, d_input, d_output, **backbone)` a full classifier, and `param_groups` the
optimizer groups from the SSM parameters' own settings.
"""

from models.backbone import build_model
from models.optim import param_groups
from models.registry import MODELS, build_layer

__all__ = ["MODELS", "build_layer", "build_model", "param_groups"]
