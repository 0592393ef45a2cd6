"""The original's training augmentation, in tf.data (and the Residual Flows code's flips).

dal 0: none.  dal 1: random shifts up to 10% of width and height, plus
horizontal flips (cifar10), shifts only (mnist, digits), shifts + horizontal
and vertical flips + random transpose with reflect fill (space).  dal 2
(cifar10) adds rotation up to 15 degrees, zoom 0.1 and shear 0.02.  Shifts
and the dal 2 transforms are one projective transform per image (bilinear,
nearest-edge fill, as Keras' ImageDataGenerator which the original used).

Every draw is stateless, from a [2] integer `seed` (the pipeline derives one
per batch from --seed, the process rank and the batch's index): the same batch
gets the same transforms however the parallel map schedules it, and a resumed
run continues with the transforms the interrupted one would have drawn.
"""
import math

import tensorflow as tf

FLIPS = {'cifar10': 'horizontal', 'mnist': None, 'digits': None, 'space': 'all'}


# the independent draws one batch can need, in the order of `_DRAWS`
_DRAWS = ('shift_y', 'shift_x', 'angle', 'zoom_x', 'zoom_y', 'shear', 'flip_h', 'flip_v', 'transpose')


def _uniform(seeds, name, shape, low=0., high=1.):
    return tf.random.stateless_uniform(shape, seeds[_DRAWS.index(name)], low, high)


def _affine(batch, size, dal, seeds):
    """Per-image [8] projective transforms mapping output to input pixels."""
    height, width = size
    shift_y = _uniform(seeds, 'shift_y', [batch], -0.1, 0.1) * height
    shift_x = _uniform(seeds, 'shift_x', [batch], -0.1, 0.1) * width
    angle = tf.zeros([batch])
    zoom_x = zoom_y = tf.ones([batch])
    shear = tf.zeros([batch])
    if dal >= 2:
        angle = _uniform(seeds, 'angle', [batch], -15., 15.) * math.pi / 180.
        zoom_x = _uniform(seeds, 'zoom_x', [batch], 0.9, 1.1)
        zoom_y = _uniform(seeds, 'zoom_y', [batch], 0.9, 1.1)
        shear = _uniform(seeds, 'shear', [batch], -0.02, 0.02)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # output -> input: rotate and shear about the centre, zoom, then shift
    a0, a1 = cos * zoom_x, -tf.sin(angle + shear) * zoom_y
    b0, b1 = sin * zoom_x, tf.cos(angle + shear) * zoom_y
    cx, cy = (width - 1) / 2., (height - 1) / 2.
    a2 = cx - a0 * cx - a1 * cy + shift_x
    b2 = cy - b0 * cx - b1 * cy + shift_y
    zeros = tf.zeros([batch])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment(images, problem, dal, seed):
    """images: uint8 [N, H, W, C] -> augmented uint8 of the same shape; seed: [2] integers."""
    if dal == 0:
        return images
    seeds = tf.random.experimental.stateless_split(seed, len(_DRAWS))
    shape = tf.shape(images)
    batch, height, width = shape[0], images.shape[1], images.shape[2]
    fill = 'REFLECT' if problem == 'space' else 'NEAREST'
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=_affine(batch, (height, width), dal, seeds),
        output_shape=tf.stack([height, width]), fill_value=0., interpolation='BILINEAR', fill_mode=fill)
    flips = FLIPS.get(problem)
    if flips in ('horizontal', 'all'):
        flip = _uniform(seeds, 'flip_h', [batch, 1, 1, 1]) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    if flips == 'all':
        flip = _uniform(seeds, 'flip_v', [batch, 1, 1, 1]) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[1]), x)
        if height == width:
            flip = _uniform(seeds, 'transpose', [batch, 1, 1, 1]) < 0.5
            x = tf.where(flip, tf.transpose(x, [0, 2, 1, 3]), x)
    return tf.cast(tf.clip_by_value(tf.round(x), 0., 255.), tf.uint8)


def random_horizontal_flips(images, seed):
    """uint8 [N, H, W, C] -> each image mirrored left-right with probability 1/2
    (the Residual Flows code's only augmentation, for cifar10 and celebahq); seed: [2] integers."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)
