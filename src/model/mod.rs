//! The domain the sync works on, below the settings and the wire formats: targets, members and
//! the services' URLs.

pub mod google;
pub mod member;
pub mod target;
pub mod url;

pub use google::{GoogleGroupPolicy, ServiceAccountKey};
pub use member::Member;
pub use target::{
    Direction, Mode, NamePattern, Provisioning, RemovalLimits, Selection, Side, SubjectFrom,
    SubjectLookup, Target, TargetRules, TargetSpec, UserFilters,
};
pub use url::{HttpUrl, UrlError};

/// Keeps the first of items that `order` calls equal, in order, without copying anything (a
/// listing of 100,000 users or members deduplicated through a set of keys would hold every key
/// twice).
pub fn keep_first_of_each<T>(items: &mut Vec<T>, order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    let at = |i: u32| &items[i as usize];
    let mut sorted: Vec<u32> = (0..items.len() as u32).collect();
    sorted.sort_unstable_by(|&a, &b| order(at(a), at(b)).then(a.cmp(&b)));
    let mut repeated = vec![false; items.len()];
    for pair in sorted.windows(2) {
        if order(at(pair[0]), at(pair[1])).is_eq() {
            repeated[pair[1] as usize] = true;
        }
    }
    let mut next = 0;
    items.retain(|_| {
        next += 1;
        !repeated[next - 1]
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_of_each_key_stays_in_order() {
        let mut items = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5), ("b", 6)];
        super::keep_first_of_each(&mut items, |a, b| a.0.cmp(b.0));
        assert_eq!(items, [("b", 1), ("a", 2), ("c", 4)]);
        let mut none: Vec<(&str, i32)> = Vec::new();
        super::keep_first_of_each(&mut none, |a, b| a.0.cmp(b.0));
        assert!(none.is_empty());
    }
}
