"""Every command line of the project, parsed here and nowhere else.

* command.py        the `emerging` command (console script; `python -m emerging`): its subcommands
                    evaluate.py, sample.py, interpolate.py, manipulate.py (with attributes.py), export.py,
                    import_tf1.py, and what they share, common.py
* train.py          train.py's command line, the original's flags -> configurations
* train_resflow.py  the public Residual Flows code's command line (train_img.py's flags)
* launch.py         one training or inference run from configurations: what both trainers share
* paths.py          output paths checked before any work
* toy.py, tabular.py  the density benchmarks' command lines (scripts/toy_density.py, scripts/tabular_density.py)

Bad input (a flag, a file, a shape) stops before any work with a message
naming it and exit code 2.
"""
import os

# INFO and WARNING lines of TensorFlow's C++ runtime (oneDNN, CPU features) off unless asked for
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
