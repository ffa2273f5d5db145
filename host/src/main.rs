mod options;
mod schedule;
fn main() {}
