import shlex

import pytest

from emerging.flags import build_parser, derive

# `mpiexec -n N python train.py ...` lines in the form the original README published them
# (the CIFAR-10 one verbatim); N is the process count the line was published with.
PUBLISHED = [
    (4, 'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 3 '
        '--flow_coupling 1 --seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001'),
    (4, 'python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 2 '
        '--flow_coupling 1 --seed 2 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001'),
    (8, 'python train.py --problem imagenet-oord --image_size 32 --n_level 3 --depth 48 --flow_permutation 3 '
        '--flow_coupling 1 --seed 3 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001'),
    (8, 'python train.py --problem imagenet-oord --image_size 64 --n_level 4 --depth 48 --flow_permutation 3 '
        '--flow_coupling 1 --seed 4 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001'),
    (1, 'python train.py --problem space --image_size 64 --n_level 4 --depth 8 --flow_permutation 5 '
        '--flow_coupling 1 --seed 1 --learnprior --lr 0.001 --n_bits_x 8 --epochs 4001'),
]


@pytest.mark.parametrize('processes, line', PUBLISHED)
def test_published_command_lines_parse(processes, line):
    argv = shlex.split(line)[2:]
    args = build_parser().parse_args(argv)
    run = derive(args, rank=0, size=processes)
    assert run.model.n_levels == int(argv[argv.index('--n_level') + 1])
    assert run.model.depth == int(argv[argv.index('--depth') + 1])
    assert run.model.flow_permutation == int(argv[argv.index('--flow_permutation') + 1])
    assert run.model.flow_coupling == 1 and run.model.learnprior
    assert run.model.seed == processes * int(argv[argv.index('--seed') + 1])
    assert run.train.epochs == 4001 and run.train.lr == 0.001


def test_cifar_derived_values_match_the_original():
    args = build_parser().parse_args(shlex.split(PUBLISHED[0][1])[2:])
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
