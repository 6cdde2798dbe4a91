"""The Parquet schemas of an imported crash-report folder (docs/sgo.md lists every column)."""

from __future__ import annotations

import pyarrow as pa

from roadworthy.data.sgo.normalize import SEVERITIES

_LIST = pa.list_(pa.string())
_COMMON = [
    ("operator", pa.string()),
    ("operator_raw", pa.string()),
    ("maker", pa.string()),
    ("maker_raw", pa.string()),
    ("system", pa.string()),
    ("month", pa.string()),
    ("state", pa.string()),
    ("city", pa.string()),
    ("roadway_type", pa.string()),
    ("partner", pa.string()),
    ("cp_movement", pa.string()),
    ("sv_movement", pa.string()),
    ("cp_contact", _LIST),
    ("sv_contact", _LIST),
    ("sv_speed_mph", pa.float64()),
    ("severity_rank", pa.int8()),
    ("severity_raw", pa.string()),
    ("engaged", pa.bool_()),
    ("engaged_system", pa.string()),
    ("driver_type", pa.string()),
    ("weather", _LIST),
    ("roadway_conditions", _LIST),
    ("narrative", pa.string()),
    ("narrative_cbi", pa.bool_()),
]

REPORT_SCHEMA = pa.schema(
    [
        ("report_id", pa.string()),
        ("version", pa.int32()),
        ("versions", pa.int32()),
        ("report_type", pa.string()),
        ("submitted", pa.string()),
        ("entity", pa.string()),
        ("entity_raw", pa.string()),
        ("incident_id", pa.string()),
        ("incident_key", pa.string()),
        *_COMMON,
        ("model", pa.string()),
        ("model_year", pa.float64()),
        ("engaged_raw", pa.string()),
        ("roadway_surface", pa.string()),
        ("roadway_description", pa.string()),
        ("speed_limit_mph", pa.float64()),
        ("lighting", pa.string()),
        ("property_damage", pa.string()),
        ("sv_airbags", pa.string()),
        ("cp_airbags", pa.string()),
        ("within_odd", pa.string()),
        ("sources", _LIST),
        ("data_availability", _LIST),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
    ]
)

INCIDENT_SCHEMA = pa.schema(
    [
        ("incident_id", pa.string()),
        ("reports", pa.int32()),
        ("report_ids", _LIST),
        ("entities", _LIST),
        ("entities_raw", _LIST),
        ("operator_key", pa.string()),
        ("year", pa.int32()),
        ("report_year", pa.int32()),
        ("severe", pa.bool_()),
        ("narratives", pa.int32()),
        *_COMMON,
    ]
)


def severity_array(ranks: list[int | None]) -> pa.DictionaryArray:
    """Severity ranks as an ordered category over :data:`SEVERITIES` (null: unknown)."""
    indices = pa.array(ranks, type=pa.int8())
    return pa.DictionaryArray.from_arrays(indices, pa.array(SEVERITIES), ordered=True)
