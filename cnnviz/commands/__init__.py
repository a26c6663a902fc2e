"""Command-line commands; each module has ``register(commands, benches)``."""

from cnnviz.commands import (
    conv_commands,
    data_commands,
    exercise_commands,
    explorer_commands,
    export_commands,
    gpu_commands,
    loadtest_commands,
    predict_commands,
    replay_commands,
    top_images_commands,
    training_commands,
)

COMMAND_MODULES = [data_commands, conv_commands, exercise_commands, training_commands, predict_commands,
                   loadtest_commands, gpu_commands, explorer_commands, top_images_commands, replay_commands,
                   export_commands]
