"""SavedModel export of any image-flow model with serving signatures; loads with
`tf.saved_model.load` in a process that does not import this project.

Signatures (x uint8 [N, H, W, C], z float32 [N, H*W*C] flat latents in the
original's layout, temperature float32 [N]; a class-conditional model's
signatures also take y, int32 labels [N], an unconditional model's take no y):
* serving_default(x[, y]) -> bits_x, loss: the same function as bits_per_dim,
  what TF Serving's predict runs when no signature is named.  A density model's
  first answer is how likely an image is, and this signature takes the uint8
  images a client has (log_prob needs the model's own scaling) and is
  deterministic (encode and sample are random);
* bits_per_dim(x[, y]) -> bits_x, loss: no dequantisation noise, x at the
  lower edge of its bin, as `losses_per_example(noise=False)`;
* log_prob(x_float[, y]) -> log p(x) of a dequantised, preprocessed x (Glow:
  in [-0.5, 0.5), Residual Flows: in [0, 1));
* encode(x[, y]) -> z (with the original's uniform dequantisation noise);
* decode(z[, y]) -> x;
* sample(temperature[, y]) -> x, one sample per temperature.

The loaded object has the same functions as attributes (`loaded.sample(t)`).
A model trained with gradient checkpointing is exported from a copy without it
(the weights are the same): `tf.recompute_grad` would leave custom-gradient ops
in every flow step, whose saved gradient functions hold custom gradients of
their own that a SavedModel cannot keep, and loading would warn about each
(once per flow step and signature that runs the data -> latent pass).
"""
import dataclasses

import tensorflow as tf

from emerging.models.registry import build_model


def _without_gradient_checkpointing(model):
    """The model itself, or, when it recomputes activations for its gradients, a copy with its weights that
    does not (the only models with the option are those whose configuration has `gradient_checkpointing`)."""
    if not getattr(model.config, 'gradient_checkpointing', False):
        return model
    copy = build_model(dataclasses.replace(model.config, gradient_checkpointing=False))
    for mine, theirs in zip(copy.variables, model.variables, strict=True):
        mine.assign(theirs)
    return copy


class _Exported(tf.Module):
    """The model's variables and its functions (each takes y for a class-conditional model)."""

    def __init__(self, model):
        super().__init__(name=f'emerging_{model.kind}')
        # Only the variables are tracked: the functions below capture the model itself.
        self.model_variables = list(model.variables)

        def bits_per_dim(x, y=None):
            losses = model.losses_per_example(x, y, noise=False)
            return {'bits_x': losses['bits_x'], 'loss': losses['loss']}

        def log_prob(x_float, y=None):
            return {'log_prob': model.distribution(y).log_prob(x_float)}

        def encode(x, y=None):
            return {'z': model.flatten_latents(model.encode(x, y))}

        def decode(z, y=None):
            return {'x': model.decode(model.unflatten_latents(z), y)}

        def sample(temperature, y=None):
            return {'x': model.sample(y, temperature, batch=tf.shape(temperature)[0])}

        inputs = _input_specs(model)
        for function in (bits_per_dim, log_prob, encode, decode, sample):
            signature = inputs[function.__name__]
            setattr(self, function.__name__, tf.function(function, input_signature=signature, autograph=False))


def _input_specs(model) -> dict:
    """{function name: the specs of its inputs}, y last for a class-conditional model."""
    image_shape = model.config.image_shape
    image = tf.TensorSpec([None, *image_shape], tf.uint8)
    labels = [tf.TensorSpec([None], tf.int32)] if model.conditional else []
    return {'bits_per_dim': [image, *labels],
            'log_prob': [tf.TensorSpec([None, *image_shape], tf.float32), *labels],
            'encode': [image, *labels],
            'decode': [tf.TensorSpec([None, model.config.n_dims], tf.float32), *labels],
            'sample': [tf.TensorSpec([None], tf.float32), *labels]}


def export_savedmodel(model, export_dir: str) -> str:
    """Write the SavedModel of a model (signatures above).

    Args:
      model: an `ImageFlowModel` (`Glow`, `ResFlow`) with its weights.
      export_dir: the SavedModel's folder.

    Returns:
      `export_dir`.
    """
    model = _without_gradient_checkpointing(model)
    module = _Exported(model)
    signatures = {name: getattr(module, name) for name in _input_specs(model)}
    signatures['serving_default'] = module.bits_per_dim
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
