package io.github.rlhf4j.data;

/**
 * One usable row of a dataset, as a {@link RowSchema} makes it from a line of JSON or a Parquet row: a preference
 * pair (steps 1 and 2, and its prompt for step 3), a prompt alone (step 3), or plain text (the unsupervised ptx data).
 */
public sealed interface Row permits PreferenceRow, PromptRow, TextRow {}
