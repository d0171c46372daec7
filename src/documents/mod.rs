//! The documents that describe phaseflow's interfaces, generated from the code: the AsyncAPI
//! document of the messaging protocol (`asyncapi.json`) from the request kinds' data types and
//! the event data types. A test compares the committed document with what the code generates,
//! so a field added to a type without regenerating fails the build's tests.
//!
//! Pure: builds JSON values; writing the files is the test's business.

pub mod asyncapi;
