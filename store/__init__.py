"""The local snapshot of every harvested dataset, with provenance and change history.

Runs stage their records as they arrive; ``Store.publish`` makes them the snapshot in
one transaction, and a failed or killed run changes nothing.
"""

from store._engine import StoreUnavailable, make_engine
from store._idnumber import (
    id_number_birth_date,
    id_number_check_digit,
    id_number_gender,
    is_valid_id_number,
    normalize_id_number,
)
from store._record import Field, Record, RecordDeclarationError, RecordSpec, Role, record_spec
from store._snapshot import REF_COLUMN, Access, Freshness, RevealRefused, Snapshot, UnknownDataset
from store._store import PublishRefused, Store, UnknownRun
from store._tables import Audit, Change, DatasetInfo, Run, SchemaMismatch

__all__ = [
    "REF_COLUMN",
    "Access",
    "Audit",
    "Change",
    "DatasetInfo",
    "Field",
    "Freshness",
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
    "StoreUnavailable",
    "UnknownDataset",
    "UnknownRun",
    "id_number_birth_date",
    "id_number_check_digit",
    "id_number_gender",
    "is_valid_id_number",
    "make_engine",
    "normalize_id_number",
    "record_spec",
]
