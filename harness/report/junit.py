"""A validation report as JUnit XML: re-exported from `checker.junit`, the one implementation, which
`python -m checker` (in place, standard library only) uses as well."""

from checker.junit import junit_xml

__all__ = ["junit_xml"]
