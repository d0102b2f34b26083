"""The local snapshot of every harvested dataset, with provenance and change history.

Runs stage their records as they arrive; ``Store.publish`` makes them the snapshot in
one transaction, and a failed or killed run changes nothing.
"""

from store._changes import Changed, Changes, FieldChange, GridChanges, changes_since
from store._counts import Counts, Measure, community_counts, split_tags
from store._engine import make_engine
from store._errors import (
    PublishRefused,
    SchemaMismatch,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UnknownRun,
    is_disk_full,
)
from store._export import cells_as_text, export_name, freshness_text, selection_words
from store._idnumber import (
    id_number_birth_date,
    id_number_check_digit,
    id_number_gender,
    is_valid_id_number,
    normalize_id_number,
)
from store._joined import AGE_COLUMN, GRID_COLUMN, Fields, fields_of
from store._lease import Holder, Lease, LeaseRow
from store._masking import mask_frame
from store._record import Field, Record, RecordDeclarationError, RecordSpec, Role, record_spec
from store._scrub import scrub_text
from store._search import is_number_search
from store._snapshot import REF_COLUMN, Access, Freshness, RevealRefused, Snapshot, UnknownDataset
from store._store import Store
from store._tables import Audit, Change, DatasetInfo, Run, create_tables

__all__ = [
    "AGE_COLUMN",
    "GRID_COLUMN",
    "REF_COLUMN",
    "Access",
    "Audit",
    "Change",
    "Changed",
    "Changes",
    "Counts",
    "DatasetInfo",
    "Field",
    "FieldChange",
    "Fields",
    "Freshness",
    "GridChanges",
    "Holder",
    "Lease",
    "LeaseRow",
    "Measure",
    "PublishRefused",
    "Record",
    "RecordDeclarationError",
    "RecordSpec",
    "RevealRefused",
    "Role",
    "Run",
    "SchemaMismatch",
    "Snapshot",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "UnknownDataset",
    "UnknownRun",
    "cells_as_text",
    "changes_since",
    "community_counts",
    "create_tables",
    "export_name",
    "fields_of",
    "freshness_text",
    "id_number_birth_date",
    "id_number_check_digit",
    "id_number_gender",
    "is_disk_full",
    "is_number_search",
    "is_valid_id_number",
    "make_engine",
    "mask_frame",
    "normalize_id_number",
    "record_spec",
    "scrub_text",
    "selection_words",
    "split_tags",
]
