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


def plot_main(capsys, *argv):
    """(exit code, stdout, stderr) of plot_logs.main(argv)."""
    code = plot_logs.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_folder_is_named(tmp_path, capsys):
    code, _, err = plot_main(capsys, str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'plots'))
    assert code == 2 and os.path.join(str(tmp_path / 'nowhere'), 'train.txt') in err
    assert not (tmp_path / 'plots').exists()


@pytest.mark.parametrize('line, expected', [
    ('[1, 2]', 'line 12: a JSON list, expected a JSON object'),
    ('"bits_x"', 'line 12: a JSON str, expected a JSON object'),
    ('{"epoch": 11, "loss": ', 'line 12: not JSON'),
    ('{"n_images": 5, "loss": "1.0"}', 'line 12: "epoch" must be a finite number, got null'),
    ('{"epoch": "eleven", "loss": "1.0"}', 'line 12: "epoch" must be a finite number, got "eleven"'),
    ('{"epoch": "NaN", "loss": "1.0"}', 'line 12: "epoch" must be a finite number'),
    ('{"epoch": 11, "n_images": [1], "loss": "1.0"}', 'line 12: "n_images" must be a finite number, got [1]'),
    ('{"epoch": 11, "loss": ' + '9' * 5000 + '}', 'line 12: not JSON (ValueError: Exceeds the limit'),
    ('{"epoch": 11, "x": ' + '[' * 100000 + ']' * 100000 + '}', 'line 12: not JSON (RecursionError'),
])
def test_line_that_is_not_a_log_record_is_named(tmp_path, capsys, line, expected):
    """The issue's log line that is a JSON list (an AttributeError before), and other lines that are not the
    object of one epoch: the file and line are named, exit code 2, nothing written."""
    write_port_log(tmp_path / 'run', 3)
    with open(tmp_path / 'run' / 'train.txt', 'a') as f:
        f.write(line + '\n')
    code, _, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'))
    assert code == 2, err
    assert err.startswith(f'plot_logs.py: error: {tmp_path / "run" / "train.txt"}, {expected}'), err
    assert len(err.splitlines()) == 1 and not (tmp_path / 'plots').exists()


@pytest.mark.parametrize('content, expected', [
    (b'', ' is empty'),
    (b'\n \n', ' is empty'),
    (b'{"problem": "cifar10"}\n\xff\xfe{"epoch": 1}\n', ': not UTF-8 text (byte 23 is 0xff)'),
    (b'[{"problem": "cifar10"}]\n', ', line 1: a JSON list'),
])
def test_file_that_is_not_a_log_is_named(tmp_path, capsys, content, expected):
    os.makedirs(tmp_path / 'run')
    (tmp_path / 'run' / 'train.txt').write_bytes(content)
    code, _, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'))
    assert code == 2 and f'{tmp_path / "run" / "train.txt"}{expected}' in err, err
    assert not (tmp_path / 'plots').exists()


def test_last_line_cut_off_by_a_kill_is_left_out(tmp_path, capsys):
    """A run killed while appending a line: the line without its end is left out (as --resume drops it)."""
    write_port_log(tmp_path / 'run', 3)
    with open(tmp_path / 'run' / 'test.txt', 'a') as f:
        f.write('{"epoch": 15, "n_processed": 15000, "n_ima')
    code, out, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'), '--metrics',
                               'bits_x')
    assert code == 0, err
    assert f'{tmp_path / "run" / "test.txt"}, line 4: left out, cut off' in err
    assert out.strip().splitlines()[-1].split()[-2:] == ['3.5200', '3.5200']  # epoch 10's, the last whole line
    with open(tmp_path / 'run' / 'test.txt', 'a') as f:
        f.write('\n')  # the same line with its end: a line that is not JSON
    code, _, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'))
    assert code == 2 and 'test.txt, line 4: not JSON' in err, err


def test_unknown_metric_lists_the_logs_statistics(tmp_path, capsys):
    """--metrics bogus wrote an empty figure and exited 0 before."""
    write_port_log(tmp_path / 'run', 3)
    code, _, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'), '--metrics',
                             'bits_x', 'bogus')
    assert code == 2, err
    assert '--metrics bogus: not in the logs' in err and str(tmp_path / 'run' / 'train.txt') in err
    assert err.rstrip().endswith('they hold bits_x, bits_y, loss, pred_loss'), err
    assert not (tmp_path / 'plots').exists()


def test_output_that_cannot_be_written_is_named(tmp_path, capsys):
    """--out under a file raised NotADirectoryError before."""
    write_port_log(tmp_path / 'run', 3)
    (tmp_path / 'file').write_text('x')
    code, _, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'file' / 'plots'))
    assert code == 2 and f"--out '{tmp_path / 'file' / 'plots'}'" in err and 'is a file' in err, err
    os.makedirs(tmp_path / 'plots' / 'loss.png')  # a folder where a figure goes
    code, _, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'))
    assert code == 2 and 'loss.png' in err and 'is a folder' in err, err
    assert os.listdir(tmp_path / 'plots') == ['loss.png']  # bits_x.png, first, was not written either


def test_metric_names_from_a_log_stay_in_the_output_folder(tmp_path, capsys):
    os.makedirs(tmp_path / 'run')
    with open(tmp_path / 'run' / 'train.txt', 'w') as f:
        f.write('{"problem": "digits"}\n{"epoch": 1, "n_images": 10, "../../escaped": "1.5"}\n')
    code, out, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'), '--metrics',
                               '../../escaped')
    assert code == 0, err
    assert os.listdir(tmp_path / 'plots') == ['______escaped.png'] and not (tmp_path.parent / 'escaped.png').exists()


def test_non_finite_values_are_in_the_table_not_on_the_axes(tmp_path, capsys):
    """A diverged run: the last loss is NaN; the table shows it, the figure is drawn from the finite values."""
    write_original_log(tmp_path / 'run')
    with open(tmp_path / 'run' / 'train.txt', 'a') as f:
        f.write(json.dumps({'epoch': 7, 'n_images': 5600, 'loss': 'nan', 'bits_x': 'inf'}) + '\n')
    code, out, err = plot_main(capsys, str(tmp_path / 'run'), '--out', str(tmp_path / 'plots'))
    assert code == 0 and 'Warning' not in err, err
    assert out.strip().splitlines()[-1].split()[-3:] == ['inf', '4.0500', '4.0500']
