"""The density benchmarks' training pieces: the plateau schedule and the clipped train step."""
import numpy as np
import tensorflow as tf
import tf_keras

from emerging.vector import Plateau, clipped_train_step


def test_plateau_reduces_after_patience_then_cools_down():
    schedule = Plateau(1., decay=0.5, patience=2, minimum=0.1, cooldown=1)
    lrs, events = [], []
    for loss in [5., 4., 4., 4., 4., 4., 4., 4., 3., 3., 3., 3., 3., 3., 3., 3., 3.]:
        lrs.append(schedule.step(loss))
        events.append((schedule.improved, schedule.reduced, schedule.since_best))
    # bests at 0, 1, 8; three bad steps (more than patience 2) reduce; one cooldown step does not count
    assert lrs == [1., 1., 1., 1., .5, .5, .5, .5, .5, .5, .5, .25, .25, .25, .25, .125, .125]
    assert events[1] == (True, False, 0) and events[4] == (False, True, 3) and events[8] == (True, False, 0)
    assert events[-1][2] == 8
    for _ in range(20):
        lr = schedule.step(3.)
    assert lr == 0.1  # never below the minimum


def test_clipped_train_step_applies_the_clipped_gradient_then_the_hook():
    w = tf.Variable([3., 4.])
    calls = tf.Variable(0)
    optimizer = tf_keras.optimizers.SGD(1.)
    step = clipped_train_step(lambda x: tf.reduce_sum(w * x), [w], optimizer, clip_norm=1.,
                              after_update=lambda: calls.assign_add(1))
    loss = step(tf.constant([30., 40.]), tf.constant(0.5))  # gradient [30, 40], norm 50 -> [0.6, 0.8]
    np.testing.assert_allclose(float(loss), 250.)
    np.testing.assert_allclose(w.numpy(), [3. - 0.5 * 0.6, 4. - 0.5 * 0.8], rtol=1e-6)
    assert int(calls) == 1 and float(optimizer.learning_rate) == 0.5
