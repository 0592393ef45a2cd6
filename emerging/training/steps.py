"""The three compiled functions a run calls: one train step, one test step, sampling.

* train_step(x uint8 [N, H, W, C], y int32 [N], lr float32 []) -> the four
  statistics (loss, bits_x, bits_y, pred_loss), batch means averaged over
  processes.  It computes the gradients of the mean loss (jit-compiled when
  `jit_compile`), averages them over processes (Horovod's allreduce is not
  XLA-compiled, so it stays outside the jitted part) and applies them with
  the optimiser.  With a loss scale (float16 networks) the loss is scaled
  before differentiation and the gradients unscaled after; a step whose
  averaged gradients are not all finite is skipped by every process alike,
  and the scale adapts.  With adam2 the squared gradients are averaged too.
  With `grad_accumulation` n the batch is n micro-batches whose gradients
  are averaged (peak memory of one micro-batch); `max_grad_norm` clips the
  averaged gradients' global norm and `l2_decay` adds l2_decay * w to them.
* test_step(x, y) -> the same four statistics, without updating anything.
* sample(y int32 [N], temperature float32 [N]) -> uint8 images [N, H, W, C].

Every random draw of the train and test steps (dequantisation noise, a
Residual Flow's log-det estimator) comes from the run's `tf.random.Generator`,
whose position each process saves with its input position: a resumed run
draws exactly what the uninterrupted run would have.  Gradient checkpointing,
when configured, is a property of the model.
"""
import tensorflow as tf

STATS = ('loss', 'bits_x', 'bits_y', 'pred_loss')


def build_steps(model, optimizer, dist, config, loss_scale=None, rng=None):
    """Returns (train_step, test_step, sample) as tf.functions with fixed input signatures; the train and test
    steps draw their noise from the `tf.random.Generator` `rng` when given."""
    variables = model.trainable_variables
    adam2 = config.optimizer == 'adam2'
    images = tf.TensorSpec([None, *model.config.image_shape], tf.uint8)
    labels = tf.TensorSpec([None], tf.int32)

    def statistics(losses):
        return tf.stack([tf.reduce_mean(losses[k]) for k in STATS])

    def batch_gradients(x, y, scale):
        with tf.GradientTape() as tape:
            losses = model.losses_per_example(x, y, training=True, rng=rng)
            loss = tf.reduce_mean(losses['loss'])
            if scale is not None:
                loss = loss * scale
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(variables, grads)]
        if scale is not None:
            grads = [g / scale for g in grads]
        return statistics(losses), grads

    def accumulated_gradients(x, y, scale):
        # micro-batches one after another (a while loop, so only one micro-batch's activations live at a time)
        n = config.grad_accumulation
        xs = tf.reshape(x, [n, -1, *model.config.image_shape])
        ys = tf.reshape(y, [n, -1])

        def add_micro_batch(i, stats, grads):
            part_stats, part_grads = batch_gradients(xs[i], ys[i], scale)
            return i + 1, stats + part_stats / n, [g + p / n for g, p in zip(grads, part_grads)]

        start = (tf.constant(0), tf.zeros([len(STATS)]), [tf.zeros_like(v) for v in variables])
        _, stats, grads = tf.while_loop(lambda i, *_: i < n, add_micro_batch, start, parallel_iterations=1)
        return stats, grads

    # Every graph here is plain TensorFlow control flow, traced without AutoGraph: converting the model's
    # Python code took about half of a small run's start.
    gradients = tf.function(batch_gradients if config.grad_accumulation == 1 else accumulated_gradients,
                            jit_compile=config.jit_compile, autograph=False)

    @tf.function(input_signature=[images, labels, tf.TensorSpec([], tf.float32)], autograph=False)
    def train_step(x, y, lr):
        stats, grads = gradients(x, y, None if loss_scale is None else loss_scale.scale.read_value())
        squared = dist.allreduce_mean([tf.square(g) for g in grads], name='grad_sq') if adam2 else None
        grads = dist.allreduce_mean(grads, name='grad')
        if config.max_grad_norm:
            grads = tf.clip_by_global_norm(grads, config.max_grad_norm)[0]
        if config.l2_decay:
            grads = [g + config.l2_decay * v for g, v in zip(grads, variables)]
        if loss_scale is None:
            optimizer.apply(grads, lr, squared)
        else:
            # every process sees the same averaged gradients, so all skip or all apply
            finite = loss_scale.all_finite(grads)
            tf.cond(finite, lambda: optimizer.apply(grads, lr, squared), lambda: None)
            loss_scale.update(finite)
        return dist.allreduce_mean([stats], name='train_stats')[0]

    @tf.function(input_signature=[images, labels], autograph=False)
    def test_step(x, y):
        return dist.allreduce_mean([statistics(model.losses_per_example(x, y, rng=rng))], name='test_stats')[0]

    @tf.function(input_signature=[labels, tf.TensorSpec([None], tf.float32)], autograph=False)
    def sample(y, temperature):
        return model.sample(y, temperature)

    return train_step, test_step, sample
