//! The guest heap: bookkeeping for malloc/free over a range of guest addresses.
