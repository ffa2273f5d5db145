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

/// The positions `0..n` in the order `cmp` gives them, equal ones in their own order (a stable
/// sort). The component's sorts by a key go through this one function: every `sort_by` of its own
/// type or closure adds 5 to 8 KB of sorting code to the component.
pub fn sorted_positions(
    n: usize,
    cmp: &mut dyn FnMut(usize, usize) -> std::cmp::Ordering,
) -> Vec<u32> {
    // The component's memory is 32-bit: no list it holds has 2^32 items.
    let mut positions: Vec<u32> = (0..u32::try_from(n).expect("under 2^32 items")).collect();
    positions.sort_unstable_by(|&a, &b| cmp(a as usize, b as usize).then(a.cmp(&b)));
    positions
}

/// Puts `items` in the order of `positions` (from [`sorted_positions`]) in place: item `i` becomes
/// the one that was at `positions[i]`. `positions` is used up.
pub fn reorder<T: Copy>(items: &mut [T], positions: &mut [u32]) {
    const DONE: u32 = u32::MAX;
    for start in 0..items.len() {
        if positions[start] == DONE {
            continue;
        }
        let first = items[start];
        let mut at = start;
        loop {
            let from = positions[at] as usize;
            positions[at] = DONE;
            if from == start {
                items[at] = first;
                break;
            }
            items[at] = items[from];
            at = from;
        }
    }
}

/// Keeps the first of items that `order` calls equal, in order, without copying anything (a
/// listing of 100,000 users or members deduplicated through a set of keys would hold every key
/// twice).
pub fn keep_first_of_each<T>(items: &mut Vec<T>, order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    let at = |i: u32| &items[i as usize];
    let sorted = sorted_positions(items.len(), &mut |a, b| order(&items[a], &items[b]));
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
    fn positions_sort_stably_and_reorder_in_place() {
        let keys = ["c", "a", "b", "a", "c", "d"];
        let mut order = super::sorted_positions(keys.len(), &mut |a, b| keys[a].cmp(keys[b]));
        assert_eq!(order, [1, 3, 2, 0, 4, 5]);
        let mut items = [10, 11, 12, 13, 14, 15];
        super::reorder(&mut items, &mut order);
        assert_eq!(items, [11, 13, 12, 10, 14, 15]);
        assert!(super::sorted_positions(0, &mut |_, _| unreachable!()).is_empty());
    }

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
