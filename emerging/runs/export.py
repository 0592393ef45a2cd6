"""SavedModel export of any image-flow model with serving signatures; loads with
`tf.saved_model.load` in a process that does not import this project.

Signatures (x uint8 [N, H, W, C], y int32 [N], z float32 [N, D] flat latents,
temperature float32 [N]):
* bits_per_dim(x, y) -> bits_x, loss: deterministic (no dequantisation noise,
  x at the lower edge of its bin, as `losses_per_example(noise=False)`);
* log_prob(x_float, y) -> log p(x) of a dequantised, preprocessed x (Glow: in
  [-0.5, 0.5), Residual Flows: in [0, 1));
* encode(x, y) -> z (with the original's uniform dequantisation noise);
* decode(z, y) -> x;  sample(y, temperature) -> x.
"""
import tensorflow as tf


class _Exported(tf.Module):
    def __init__(self, model):
        super().__init__(name=f'emerging_{model.kind}')
        # Only the variables are tracked: the functions below capture the model itself.
        self.model_variables = list(model.variables)
        image = tf.TensorSpec([None, *model.config.image_shape], tf.uint8, name='x')
        image_float = tf.TensorSpec([None, *model.config.image_shape], tf.float32, name='x_float')
        labels = tf.TensorSpec([None], tf.int32, name='y')
        latent = tf.TensorSpec([None, model.config.n_dims], tf.float32, name='z')
        temperature = tf.TensorSpec([None], tf.float32, name='temperature')

        @tf.function(input_signature=[image, labels])
        def bits_per_dim(x, y):
            losses = model.losses_per_example(x, y, noise=False)
            return {'bits_x': losses['bits_x'], 'loss': losses['loss']}

        @tf.function(input_signature=[image_float, labels])
        def log_prob(x_float, y):
            return {'log_prob': model.distribution(y).log_prob(x_float)}

        @tf.function(input_signature=[image, labels])
        def encode(x, y):
            return {'z': model.flatten_latents(model.encode(x, y))}

        @tf.function(input_signature=[latent, labels])
        def decode(z, y):
            return {'x': model.decode(model.unflatten_latents(z), y)}

        @tf.function(input_signature=[labels, temperature])
        def sample(y, temperature):
            return {'x': model.sample(y, temperature)}

        self.bits_per_dim, self.log_prob, self.encode, self.decode, self.sample = (
            bits_per_dim, log_prob, encode, decode, sample)


def export_savedmodel(model, export_dir: str) -> str:
    """Write the SavedModel of a model (signatures above).

    Args:
      model: an `ImageFlowModel` (`Glow`, `ResFlow`) with its weights.
      export_dir: the SavedModel's folder.

    Returns:
      `export_dir`.
    """
    module = _Exported(model)
    signatures = {name: getattr(module, name) for name in ('bits_per_dim', 'log_prob', 'encode', 'decode', 'sample')}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
