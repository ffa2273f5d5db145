//! Tests of whole passes: each direction through `pass::run`, so that no production module of
//! a direction needs the pass that runs it.

mod pass;
mod to_hub;
