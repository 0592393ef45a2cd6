"""Space-to-depth squeeze (Glow, section 3.2 of RealNVP).

[N, H, W, C] -> [N, H/2, W/2, 4C]: reshape to [N, H/2, 2, W/2, 2, C],
transpose to [0, 1, 3, 5, 2, 4], reshape; channel 4c + 2a + b of the output
holds pixel (2i + a, 2j + b) of channel c.  Volume preserving; unsqueeze is
the exact inverse.  `SqueezeBijector` is the TFP face (forward = unsqueeze,
latent -> data, with the event shape changing accordingly).
"""
import tensorflow as tf

from emerging.flows.base import FlowBijector


def squeeze2d(x, factor=2):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if height % factor or width % factor:
        raise ValueError(f'squeeze: height and width must be divisible by {factor}, got {height}x{width}')
    x = tf.reshape(x, [-1, height // factor, factor, width // factor, factor, channels])
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4])
    return tf.reshape(x, [-1, height // factor, width // factor, channels * factor * factor])


def unsqueeze2d(x, factor=2):
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if channels % (factor * factor):
        raise ValueError(f'unsqueeze: channels must be divisible by {factor * factor}, got {channels}')
    x = tf.reshape(x, [-1, height, width, channels // factor ** 2, factor, factor])
    x = tf.transpose(x, [0, 1, 4, 2, 5, 3])
    return tf.reshape(x, [-1, height * factor, width * factor, channels // factor ** 2])


class SqueezeBijector(FlowBijector):
    """inverse (data -> latent): squeeze; forward: unsqueeze."""

    def __init__(self, factor=2, validate_args=False, name='squeeze'):
        parameters = dict(locals())
        if factor < 1:
            raise ValueError(f'squeeze factor must be positive, got {factor}')
        self._factor = int(factor)
        super().__init__(parameters=parameters, name=name, validate_args=validate_args,
                         is_constant_jacobian=True)

    def _inverse(self, y):
        return squeeze2d(y, self._factor)

    def _forward(self, x):
        return unsqueeze2d(x, self._factor)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], y.dtype)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], x.dtype)

    def _forward_event_shape(self, input_shape):
        h, w, c = input_shape[-3:]
        f = self._factor
        return input_shape[:-3].concatenate([h * f, w * f, c // f ** 2])

    def _inverse_event_shape(self, output_shape):
        h, w, c = output_shape[-3:]
        f = self._factor
        return output_shape[:-3].concatenate([h // f, w // f, c * f ** 2])

    def _forward_event_shape_tensor(self, input_shape):
        f = self._factor
        return tf.concat([input_shape[:-3], input_shape[-3:] * [f, f, 1] // [1, 1, f * f]], axis=0)

    def _inverse_event_shape_tensor(self, output_shape):
        f = self._factor
        return tf.concat([output_shape[:-3], output_shape[-3:] * [1, 1, f * f] // [f, f, 1]], axis=0)
