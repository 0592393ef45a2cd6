"""TensorBoard, from the virtualenv the setup script makes, serves a run folder's curves."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from emerging.training.recorder import Recorder
from emerging.training.steps import STATS
from tests.helpers import env


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.serial  # a port of this machine, taken between finding it free and binding it
def test_tensorboard_serves_the_scalars_of_a_run(tmp_path):
    recorder = Recorder(str(tmp_path), {'problem': 'digits'})
    for epoch, bits in [(1, 4.5), (2, 4.0), (3, 3.75)]:
        recorder.scalars('train', epoch, [bits + 0.1, bits, 0., 0.], lr=0.001)
    recorder.flush()

    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
    server = subprocess.Popen([tensorboard, '--logdir', str(tmp_path / 'tensorboard'), '--host', '127.0.0.1',
                               '--port', str(port)], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    base = f'http://127.0.0.1:{port}/data/plugin/scalars'
    try:
        deadline, tags = time.monotonic() + 180, {}
        while f'train/{STATS[1]}' not in tags.get('.', {}):
            assert server.poll() is None, f'tensorboard exited with {server.returncode}: {server.stdout.read()}'
            assert time.monotonic() < deadline, 'tensorboard did not serve the run within 180 s'
            time.sleep(1)
            try:
                tags = get_json(f'{base}/tags')
            except (urllib.error.URLError, ConnectionError):
                tags = {}
        query = urllib.parse.urlencode({'run': '.', 'tag': f'train/{STATS[1]}'})
        points = get_json(f'{base}/scalars?{query}')
        assert [(step, round(value, 6)) for _, step, value in points] == [(1, 4.5), (2, 4.0), (3, 3.75)]
        assert 'train/lr' in tags['.']
    finally:
        server.terminate()
        server.wait(timeout=60)
