"""The Dagster assets and asset checks: thin wrappers that call the library and emit metadata."""

import warnings

import dagster as dg

#: Dagster features in beta or preview this project uses on purpose (README, "Dagster features in
#: beta or preview"). Their warnings would print at every load of the code location (the demo,
#: `dagster dev`, each run) and bury the ones that matter; any other beta/preview use still warns.
CHOSEN_FEATURES: tuple[tuple[type[Warning], str], ...] = (
    # BackfillPolicy.single_run(): a range is one run (and one export job per definition).
    (dg.BetaWarning, r"Parameter `backfill_policy` of function `(multi_)?asset`"),
    # AssetCheckSpec(partitions_def=...): a daily asset's checks report per day.
    (dg.PreviewWarning, r"Specifying a partitions_def on an AssetCheckSpec"),
)

for _category, _message in CHOSEN_FEATURES:
    warnings.filterwarnings("ignore", message=_message, category=_category)
