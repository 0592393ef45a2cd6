"""Image-flow models: the interface every model implements, and the models.

* base.py       `ImageFlowModel` (the interface) and `ImageFlowBijector`
* config.py     `ImageFlowConfig`, `GlowConfig`, `ResFlowConfig` (TensorFlow-free)
* registry.py   the model kinds config.json records -> configuration and model; `build_model`
* glow.py       `Glow`: L levels of K steps with multi-scale splits
* glow_step.py  Glow's `FlowStep` (actnorm, permutation, coupling) and class head
* resflow.py    `ResFlow`: the Residual Flow

The names below are imported on first use, so that the configurations and
the registry import without starting TensorFlow.
"""
from emerging.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'ImageFlowModel': 'emerging.models.base',
    'ImageFlowBijector': 'emerging.models.base',
    'ImageFlowConfig': 'emerging.models.config',
    'GlowConfig': 'emerging.models.config',
    'ResFlowConfig': 'emerging.models.config',
    'MODELS': 'emerging.models.registry',
    'build_model': 'emerging.models.registry',
    'Glow': 'emerging.models.glow',
    'ResFlow': 'emerging.models.resflow',
})
__all__ = ['ImageFlowModel', 'ImageFlowBijector', 'ImageFlowConfig', 'GlowConfig', 'ResFlowConfig', 'MODELS',
           'build_model', 'Glow', 'ResFlow']
