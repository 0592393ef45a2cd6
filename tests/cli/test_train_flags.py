import shlex

import pytest

from emerging.cli.train import build_parser, derive

# Every `mpiexec -n 4 python train.py ...` line of the original README, verbatim
# (the smaller CIFAR-10 architectures with depth 8 and 4 for its "?").
PUBLISHED = [
    # galaxy images: periodic (the README passes 5; see the README of this port), emerging, Glow
    'python train.py --problem space --image_size 32 --n_level 2 --depth 8 --flow_permutation 5 --flow_coupling 1 '
    '--seed 2 --lr 0.001 --n_bits_x 8 --epochs 6001',
    'python train.py --problem space --image_size 32 --n_level 2 --depth 8 --flow_permutation 3 --flow_coupling 1 '
    '--seed 2 --lr 0.001 --n_bits_x 8 --epochs 6001',
    'python train.py --problem space --image_size 32 --n_level 2 --depth 8 --flow_permutation 2 --flow_coupling 1 '
    '--seed 2 --lr 0.001 --n_bits_x 8 --epochs 6001',
    # CIFAR-10: emerging, Glow; then the smaller architectures
    'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 3 --flow_coupling 1 '
    '--seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001',
    'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 2 --flow_coupling 1 '
    '--seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001',
    *[f'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth {depth} --flow_permutation {perm} '
      f'--flow_coupling 1 --seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001'
      for depth in (8, 4) for perm in (3, 2)],
    # ImageNet 32x32 and 64x64: emerging, Glow
    'python train.py --problem imagenet-oord --image_size 32 --n_level 3 --depth 48 --flow_permutation 3 '
    '--flow_coupling 1 --seed 0 --learnprior --lr 0.001 --n_bits_x 8',
    'python train.py --problem imagenet-oord --image_size 32 --n_level 3 --depth 48 --flow_permutation 2 '
    '--flow_coupling 1 --seed 0 --learnprior --lr 0.001 --n_bits_x 8',
    'python train.py --problem imagenet-oord --image_size 64 --n_level 4 --depth 48 --flow_permutation 3 '
    '--flow_coupling 1 --seed 0 --learnprior --lr 0.001 --n_bits_x 8',
    'python train.py --problem imagenet-oord --image_size 64 --n_level 4 --depth 48 --flow_permutation 2 '
    '--flow_coupling 1 --seed 0 --learnprior --lr 0.001 --n_bits_x 8',
    # 1x1 convolutions: QR, PLU, plain
    'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 8 --flow_permutation 2 --flow_coupling 1 '
    '--seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 3501 --decomposition QR',
    'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 8 --flow_permutation 2 --flow_coupling 1 '
    '--seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 3501 --decomposition PLU',
    'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 8 --flow_permutation 2 --flow_coupling 1 '
    '--seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 3501',
]
PROCESSES = 4


def flag(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


@pytest.mark.parametrize('line', PUBLISHED)
def test_published_command_lines_parse(line):
    argv = shlex.split(line)[2:]
    args = build_parser().parse_args(argv)
    run = derive(args, rank=0, size=PROCESSES)
    assert run.model.image_shape[0] == int(flag(argv, '--image_size'))
    assert run.model.n_levels == int(flag(argv, '--n_level'))
    assert run.model.depth == int(flag(argv, '--depth'))
    assert run.model.flow_permutation == int(flag(argv, '--flow_permutation'))
    assert run.model.decomposition == flag(argv, '--decomposition', '')
    assert run.model.flow_coupling == 1 and run.model.learnprior == ('--learnprior' in argv)
    assert run.model.seed == PROCESSES * int(flag(argv, '--seed'))
    assert run.train.epochs == int(flag(argv, '--epochs', 1000000)) and run.train.lr == 0.001


def test_cifar_derived_values_match_the_original():
    args = build_parser().parse_args(shlex.split(PUBLISHED[3])[2:])
    run = derive(args, rank=1, size=4)
    assert run.train.local_batch_train == 64 and run.train.local_batch_test == 50
    assert run.train.local_batch_init == 256
    assert run.train.train_its == 196  # ceil(50000 / (64 * 4))
    assert run.train.full_test_its == 50  # 10000 // (50 * 4)
    assert abs(run.train.beta2 - (1 - 1 / 196)) < 1e-12
    assert run.model.seed == 1 + 4 * 2 and run.data.rank == 1
    assert run.model.image_shape == (32, 32, 3) and run.model.n_y == 10
    assert run.model.width == 512 and run.model.gradient_checkpointing


def test_anchor_scaling_for_large_images():
    args = build_parser().parse_args(['--problem', 'celeba'])
    run = derive(args, size=1)
    assert run.train.local_batch_train == 1 and run.train.local_batch_test == 1
    assert run.model.image_shape == (256, 256, 3) and run.train.n_test == 3000


@pytest.mark.parametrize('argv, message', [
    (['--flow_perm', '9'], 'unknown flow_permutation 9'),
    (['--image_size', '20'], 'not divisible by 2\\^n_levels'),
    (['--n_test', '1001'], 'n_test=1001 is not divisible'),
    (['--optimizer', 'sgd'], "unknown optimizer 'sgd'"),
    (['--decomposition', 'SVD'], "unknown decomposition 'SVD'"),
])
def test_bad_values_name_the_problem(argv, message):
    args = build_parser().parse_args(argv)
    with pytest.raises(ValueError, match=message):
        derive(args)


@pytest.mark.parametrize('argv, message', [
    (['--no_such_flag', '1'], 'unrecognized arguments: --no_such_flag'),
    (['--n_b', '3'], 'ambiguous option: --n_b could match'),
    (['--compute_dtype', 'float8'], "argument --compute_dtype: invalid choice: 'float8'"),
])
def test_unknown_and_ambiguous_flags(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_compute_dtype_reaches_the_model_config():
    assert derive(build_parser().parse_args([])).model.compute_dtype == 'float32'
    assert derive(build_parser().parse_args(['--compute_dtype', 'bfloat16'])).model.compute_dtype == 'bfloat16'
