//! Carbon pickle protocol payload decoder.
