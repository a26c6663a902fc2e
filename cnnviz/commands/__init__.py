"""Command-line commands; each module has ``register(commands, benches)``."""

from cnnviz.commands import data_commands, training_commands

COMMAND_MODULES = [data_commands, training_commands]
