//! The ad-hoc code signature (embedded SuperBlob with a CodeDirectory), re-hashed incrementally.
