"""The local snapshot of every harvested dataset, with provenance and history.

For now it only exposes the resident ID-number helpers.
"""

from store._idnumber import (
    id_number_birth_date,
    id_number_check_digit,
    id_number_gender,
    is_valid_id_number,
    normalize_id_number,
)

__all__ = [
    "id_number_birth_date",
    "id_number_check_digit",
    "id_number_gender",
    "is_valid_id_number",
    "normalize_id_number",
]
