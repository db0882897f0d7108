"""The lake's hint catalog as hint slots and a feature spec, read without Spark (pyarrow), for the
stages that run outside Spark: training, evaluation and the data-quality checks."""

from __future__ import annotations

import pyarrow.parquet as pq

from feature_store.registry import FeatureSpec, HintSlots, build_spec, slots_for
from hintrl.config import FeatureConfig
from hintrl.errors import DataContractError
from hintrl.lake import Lake, filesystem


def catalog_slots(lake: Lake, per: str = "auto") -> HintSlots:
    fs, path = filesystem(lake.raw("hint_catalog"))
    try:
        catalog = pq.read_table(path, filesystem=fs, columns=["hint_type", "family"]).to_pandas()
    except (FileNotFoundError, OSError) as err:
        raise DataContractError(f"cannot read the hint catalog under {lake.root}: {err}") from None
    catalog = catalog.sort_values("hint_type")
    try:
        return slots_for(list(catalog.hint_type), list(catalog.family), per)
    except ValueError as err:
        raise DataContractError(f"hint catalog: {err}") from None


def catalog_spec(lake: Lake, cfg: FeatureConfig) -> FeatureSpec:
    """The feature spec of the lake's hint catalog under the feature settings."""
    return build_spec(catalog_slots(lake, cfg.hint_slots), cfg.ctr_prior_clicks, cfg.ctr_prior_non_clicks)
