"""The app's pages as the core knows them: url paths, and the widget keys and on-screen words that
code outside the UI drives (the load test, the host's page list).

The UI builds on these names (``cnnviz.ui.navigation`` adds scripts, titles and icons), so a page
renamed or reworded here changes the UI and the load test together.
"""

from __future__ import annotations

HOME_PAGE = "home"  # always on
CONVOLUTION_PAGE = "convolution"
EXERCISES_PAGE = "exercises"
TRAIN_PAGE = "train"
PREDICT_PAGE = "predict"
EXPLORE_PAGE = "explore"
# in menu order: the pages a host may switch off
PAGE_NAMES = (CONVOLUTION_PAGE, EXERCISES_PAGE, TRAIN_PAGE, PREDICT_PAGE, EXPLORE_PAGE)

# Inspect and predict: the input choice, the uploader, the answer.
PREDICT_SOURCE_KEY = "predict_source"
UPLOAD_INPUT = "Upload"  # the input choice that shows the uploader
PREDICT_UPLOAD_KEY = "predict_upload"
PREDICTION_LABEL = "Prediction"  # the metric that shows the predicted class

# Train: the dataset, the per-architecture form, the button, the queue and the result.
TRAIN_DATASET_KEY = "train_dataset"
TRAIN_FORM_PREFIX = "train_"  # the form's widgets are keyed train_<preset>_epochs, train_<preset>_subset
EPOCHS_SUFFIX = "_epochs"
SUBSET_SUFFIX = "_subset"
TRAIN_START_KEY = "train_start"
QUEUED_TEXT = "In line for a training slot"  # followed by ": position N ..."
QUEUE_FULL_TEXT = "try again in a few minutes"  # the line is full: the run was refused
TEST_ACCURACY_LABEL = "Test accuracy"  # the metric shown when a run has been scored
TRAIN_SAVE_KEY = "train_save"  # the save form's button, under the run history
SAVED_TEXT = "Saved as"  # the success line of a save
NOTHING_TO_SAVE_TEXT = "nothing to score, compare or save"  # a run stopped before its first step
TRAIN_ONNX_KEY = "train_takeaway_onnx"  # "Take it with you": a scored run's ONNX file (a download button)
TRAIN_SCRIPT_KEY = "train_takeaway_script"  # ... and its training script


def train_form_key(preset: str) -> str:
    """The key prefix of the Train page's settings for one architecture: ``train_mnist_fast``."""
    return TRAIN_FORM_PREFIX + preset


# Explore the network: the model, the image, the picked cell, and the heavy work a student asks for.
EXPLORE_MODEL_KEY = "explore_model"
EXPLORE_SOURCE_KEY = "explore_source"  # where the image comes from: a test-set image, an upload, a drawing
EXPLORE_TEST_INDEX_KEY = "explore_test_index"  # which of the 10,000 test images
EXPLORE_UPLOAD_KEY = "explore_upload"
EXPLORE_LAYER_KEY = "explore_layer"  # the picked cell, typed: layer, channel, row, column
EXPLORE_CHANNEL_KEY = "explore_channel"
EXPLORE_ROW_KEY = "explore_row"
EXPLORE_COL_KEY = "explore_col"
EXPLORE_TOP_IMAGES_KEY = "explore_top_images"  # the button that finds the 9 test images that excite it
EXPLORE_OPTIMIZE_KEY = "explore_optimize"  # the button that optimizes an image for the channel
EXPLORE_VALUE_LABEL = "Value of this cell"  # the metric that shows the picked cell's value
TOP_IMAGES_DONE_TEXT = "strongest responses"  # in the caption over the 9 top images
OPTIMIZED_DONE_TEXT = "on the starting noise"  # in the caption under the optimized image

# The Convolution page runs on a trained layer's real kernels and input when this session key holds a
# cnnviz.convolution.learned.LearnedConvolution (set by the explorer's "open on the Convolution page").
CONVOLUTION_HANDOFF_KEY = "convolution_learned"

# Train: the time machine (snapshots of a run), its clickable confusion matrix and the map of what it
# learned.
TRAIN_PROBE_SOURCE_KEY = "train_probe_source"  # the image snapshots follow: a test image, upload, drawing
TRAIN_TIME_KEY = "train_time"  # the time slider over a run's snapshots
TRAIN_PLAY_KEY = "train_play"  # the Play button of the time slider
TRAIN_CONFUSION_KEY = "train_confusion_pick"  # the clickable confusion matrix (a plotly chart)
TRAIN_PROJECTION_KEY = "train_projection"  # the map of what it learned (a plotly chart)

# Convolution: the lesson picker and the settings the load test's lab students change.
CONV_LESSON_KEY = "conv_lesson"
CONV_LESSONS = ("Convolution and pooling", "Transposed convolution", "Groups, depthwise and 1x1")
CONV_STRIDE_KEY = "conv_stride"  # the main lesson, one stride for both axes
CONV_PADDING_KEY = "conv_padding"
CONV_FLIP_KEY = "conv_flip"  # the true-convolution toggle
CONV_KERNEL_COUNT_KEY = "conv_kernel_count"
CONV_PRESET_PREFIX = "conv_preset_"  # + the kernel's index from 0: its preset (or "custom")
CONV_CUSTOM_PREFIX = "conv_custom_"  # + the kernel's index from 0: a grayscale custom kernel's text
CONV_FEATURE_MAP_KEY = "conv_feature_map"  # the map ReLU and pooling take, shown with 2 kernels or more
TCONV_STRIDE_KEY = "tconv_stride"  # + "_h" or "_w": the transposed lesson's stride per axis
CHAN_GROUPS_PREFIX = "chan_groups_"  # + the input's channel count: the grouped lesson's group count
CODE_OPEN_SUFFIX = "_open"  # "PyTorch code for this map" expanders are keyed <code key>_open
CONV_CODE_KEY = "conv_code"  # the code expanders of the three lessons
TCONV_CODE_KEY = "tconv_code"
CHAN_GROUPED_CODE_KEY = "chan_grouped_code"

# Exercises: the set, the seed of random practice, the answer box and its buttons, the score.
EXERCISE_SET_KEY = "ex_set"
EXERCISE_SEED_KEY = "ex_seed"
EXERCISE_KINDS_KEY = "ex_kinds"
EXERCISE_ANSWER_PREFIX = "ex_answer_"  # + a hash of the set + "_" + the exercise's index from 0
CHECK_SUFFIX = "_check"  # the answer key + this: the Check button
SHOW_ANSWER_SUFFIX = "_show"  # the answer key + this: the Show answer button
EXERCISE_NEXT_KEY = "ex_next"
SCORE_TEXT = "right** in this session"  # in "**R of T right** in this session."
