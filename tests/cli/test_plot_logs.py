"""scripts/plot_logs.py on logs the test writes: one in this port's format (via
ResultLogger), one as the original's code wrote it (hand-written lines)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from emerging.cli import plot_logs
from emerging.training.recorder import ResultLogger, format_results


def write_port_log(logdir, flow_permutation):
    os.makedirs(logdir)
    hparams = {'problem': 'cifar10', 'flow_permutation': flow_permutation, 'n_levels': 3, 'depth': 8,
               'width': 64, 'logdir': str(logdir)}
    train = ResultLogger(os.path.join(logdir, 'train.txt'), hparams)
    test = ResultLogger(os.path.join(logdir, 'test.txt'), hparams)
    for epoch in range(1, 11):
        bits = 5. - 0.15 * epoch - 0.01 * flow_permutation
        train.log(epoch=epoch, n_processed=epoch * 1000, n_images=epoch * 1000, train_time=epoch * 2,
                  **format_results([bits, bits, 0., 1.]))
        if epoch % 5 == 0:
            test.log(epoch=epoch, n_processed=epoch * 1000, n_images=epoch * 1000,
                     **format_results([bits + .05, bits + .05, 0., 1.]))


def write_original_log(logdir):
    """The original's train.txt / test.txt: hyperparameters, then string statistics."""
    os.makedirs(logdir)
    hparams = {'problem': 'cifar10', 'flow_permutation': 2, 'n_levels': 3, 'depth': 8, 'width': 64,
               'logdir': './logs', 'n_train': 50000}
    with open(os.path.join(logdir, 'train.txt'), 'w') as f:
        f.write(json.dumps(hparams) + '\n')
        for epoch in range(1, 7):
            f.write(json.dumps({'epoch': epoch, 'n_processed': epoch * 800, 'n_images': epoch * 800,
                                'train_time': epoch, 'loss': f'{4.5 - 0.1 * epoch:.4f}',
                                'bits_x': f'{4.5 - 0.1 * epoch:.4f}', 'bits_y': '0.0000',
                                'pred_loss': '1.0000'}) + '\n')
    with open(os.path.join(logdir, 'test.txt'), 'w') as f:
        f.write(json.dumps(hparams) + '\n')
        f.write(json.dumps({'epoch': 5, 'n_processed': 4000, 'n_images': 4000, 'loss': '4.0500',
                            'bits_x': '4.0500', 'bits_y': '0.0000', 'pred_loss': '1.0000'}) + '\n')


def test_plots_and_table(tmp_path, capsys):
    write_port_log(tmp_path / 'emerging', 3)
    write_port_log(tmp_path / 'glow', 2)
    write_original_log(tmp_path / 'original')
    out = tmp_path / 'plots'
    assert plot_logs.main([str(tmp_path / 'emerging'), str(tmp_path / 'glow'), str(tmp_path / 'original'),
                           '--out', str(out)]) == 0
    for metric in ('bits_x', 'loss'):
        image = np.asarray(Image.open(out / f'{metric}.png').convert('RGB'))
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # curves, legend, axes were drawn
    table = capsys.readouterr().out
    lines = table.strip().splitlines()
    assert lines[-4].split()[:2] == ['run', 'epochs']
    emerging = next(line for line in lines if line.startswith('emerging:'))
    assert 'flow_permutation=3' in emerging
    # final train 5 - 1.5 - 0.03, final and best test + 0.05
    assert emerging.split()[-3:] == ['3.4700', '3.5200', '3.5200']
    original = next(line for line in lines if line.startswith('original:'))
    assert 'flow_permutation=2' in original and original.split()[-3:] == ['3.9000', '4.0500', '4.0500']


def test_single_run_labelled_by_architecture(tmp_path, capsys):
    write_original_log(tmp_path / 'run')
    plot_logs.main([str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'), '--metrics', 'bits_x'])
    assert 'run: problem=cifar10 flow_permutation=2' in capsys.readouterr().out
    assert (tmp_path / 'plots' / 'bits_x.png').exists()


def test_bad_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot_logs.main([str(tmp_path / 'nowhere')])
    assert os.path.join(str(tmp_path / 'nowhere'), 'train.txt') in capsys.readouterr().err
