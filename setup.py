import os
import re

from setuptools import find_packages, setup

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'emerging', '__init__.py')) as f:
    VERSION = re.search(r"__version__ = '([^']+)'", f.read()).group(1)

REQUIREMENTS = [
    'tensorflow==2.21.0',
    'tensorflow-probability==0.25.0',
    'tf-keras==2.21.0',
    'keras==3.15.1',
    'tensorflow-datasets==4.9.10',
    'tensorflow-metadata==1.21.0',
    'importlib_resources>=6,<7',  # tfds needs it to build (download) cifar10 / mnist
    'protobuf==7.36.2',
    'absl-py>=2.1,<3',
    'numpy>=1.26,<2.1',
    'scipy>=1.11,<1.15',
    'scikit-learn>=1.4,<1.7',
    'pandas>=2.2,<2.3',  # the tabular benchmarks: GAS is a pandas pickle, HEPMASS CSVs
    'h5py>=3.11,<4',  # BSDS300 is HDF5
    'Pillow>=10,<12',
    'tqdm>=4.66,<5',
    'matplotlib>=3.8,<3.10',
    'tensorboard==2.21.0',  # shows the logs' curves; TensorFlow 2.21 no longer requires it
    'setuptools>=70,<81',  # Horovod's build uses it (--no-build-isolation): measured with 80
]

setup(
    name='emerging',
    version=VERSION,
    description='Emerging convolutions for generative normalizing flows: a TF2 / Keras / TFP port',
    # only the package: train.py and scripts/ stay in the repository as wrappers of `emerging` subcommands
    packages=find_packages(include=['emerging', 'emerging.*']),
    package_data={'emerging.runs': ['pretrained/*/*.json', 'pretrained/*/*.txt', 'pretrained/*/*.ckpt.*',
                                    'pretrained/*/best/*',
                                    'pretrained/*/manipulation/*.npy', 'pretrained/*/manipulation/*.json']},
    entry_points={'console_scripts': ['emerging = emerging.cli.command:main']},
    python_requires='>=3.11,<3.12',
    license='MIT',
    install_requires=REQUIREMENTS,
    extras_require={
        # built from source against the pinned TensorFlow; needs MPI (see scripts/setup.sh)
        'horovod': ['horovod==0.28.1'],
        # the linter, the tests (the fuzz tests use Hypothesis), and the test that runs examples/quickstart.ipynb
        'test': ['pytest>=8,<9', 'hypothesis==6.170.27', 'pytest-xdist==3.8.0', 'ruff==0.17.6', 'nbclient==0.11.0',
                 'nbformat==5.11.1', 'ipykernel==7.4.0'],
    },
)
