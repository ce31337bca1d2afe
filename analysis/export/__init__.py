"""The weekly exports' content: ISO-week calendar, CSV cells, pseudonyms, manifest, re-export policy."""

from .calendar import Week
from .pseudonym import Pseudonymizer
from .weekly import ExportJob, WeekExport, export_weeks

__all__ = ["ExportJob", "Pseudonymizer", "Week", "WeekExport", "export_weeks"]
