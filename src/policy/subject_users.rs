//! A target's selected users by subject, packed: every subject and user name in one string and
//! twelve bytes an entry. At 100,000 users the `BTreeMap<String, Vec<String>>` it replaces held
//! ≈ 9 MB of the component's memory beside the listed users; this holds ≈ 3.

use crate::model::{reorder, sorted_positions};
use crate::policy::plan::Subjects;

/// Where one (subject, user) pair is in the text: the subject, then the name right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    start: u32,
    subject_len: u32,
    name_len: u32,
}

/// Collects (subject, user) pairs in listing order; [`SubjectUsersBuilder::build`] sorts them.
#[derive(Debug, Default)]
pub struct SubjectUsersBuilder {
    text: String,
    entries: Vec<Entry>,
}

impl SubjectUsersBuilder {
    /// Room for `pairs` entries at once (growing by doubling would hold two buffers together);
    /// what is left unused is given back by [`SubjectUsersBuilder::build`].
    pub fn with_capacity(pairs: usize) -> Self {
        Self {
            text: String::new(),
            entries: Vec::with_capacity(pairs),
        }
    }

    pub fn add(&mut self, subject: &str, name: &str) {
        // The component's memory is 32-bit: its text can never pass 4 GiB.
        let len = |n: usize| u32::try_from(n).expect("a selection under 4 GiB");
        self.entries.push(Entry {
            start: len(self.text.len()),
            subject_len: len(subject.len()),
            name_len: len(name.len()),
        });
        self.text.push_str(subject);
        self.text.push_str(name);
    }

    /// Sorted by subject; the users of one subject stay in the order they were added.
    pub fn build(self) -> SubjectUsers {
        let Self {
            mut text,
            mut entries,
        } = self;
        let mut order = sorted_positions(entries.len(), &mut |a, b| {
            subject_of(&text, &entries[a]).cmp(subject_of(&text, &entries[b]))
        });
        reorder(&mut entries, &mut order);
        drop(order);
        text.shrink_to_fit();
        entries.shrink_to_fit();
        SubjectUsers { text, entries }
    }
}

fn subject_of<'a>(text: &'a str, e: &Entry) -> &'a str {
    let start = e.start as usize;
    &text[start..start + e.subject_len as usize]
}

fn name_of<'a>(text: &'a str, e: &Entry) -> &'a str {
    let start = (e.start + e.subject_len) as usize;
    &text[start..start + e.name_len as usize]
}

/// Subjects, each with the hub users that map to it, in subject order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubjectUsers {
    text: String,
    /// Sorted by subject, then by the order they were added.
    entries: Vec<Entry>,
}

impl SubjectUsers {
    /// Every (subject, user name) pair, by subject.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (subject_of(&self.text, e), name_of(&self.text, e)))
    }

    /// Each subject once, in order.
    pub fn subjects(&self) -> impl Iterator<Item = &str> + '_ {
        let mut last: Option<&str> = None;
        self.entries.iter().filter_map(move |e| {
            let s = subject_of(&self.text, e);
            (last != Some(s)).then(|| {
                last = Some(s);
                s
            })
        })
    }

    /// The users that map to `subject`, in the order they were added.
    pub fn users_of<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let from = self
            .entries
            .partition_point(|e| subject_of(&self.text, e) < subject);
        self.entries[from..]
            .iter()
            .take_while(move |e| subject_of(&self.text, e) == subject)
            .map(|e| name_of(&self.text, e))
    }

    pub fn contains(&self, subject: &str) -> bool {
        self.users_of(subject).next().is_some()
    }

    /// How many (subject, user) pairs: the mapped users.
    pub fn pairs(&self) -> usize {
        self.entries.len()
    }
}

impl Subjects for SubjectUsers {
    fn has(&self, subject: &str) -> bool {
        self.contains(subject)
    }
    fn each_in_order(&self, f: &mut dyn FnMut(&str)) {
        self.subjects().for_each(f);
    }
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(pairs: &[(&str, &str)]) -> SubjectUsers {
        let mut b = SubjectUsersBuilder::default();
        for (subject, name) in pairs {
            b.add(subject, name);
        }
        b.build()
    }

    #[test]
    fn subjects_in_order_with_their_users_in_the_order_added() {
        let s = built(&[
            ("9", "zed"),
            ("1", "ana"),
            ("9", "amy"),
            ("10", "ben"),
            ("1", "abe"),
        ]);
        assert_eq!(s.subjects().collect::<Vec<_>>(), ["1", "10", "9"]);
        assert_eq!(s.users_of("9").collect::<Vec<_>>(), ["zed", "amy"]);
        assert_eq!(s.users_of("1").collect::<Vec<_>>(), ["ana", "abe"]);
        assert_eq!(s.users_of("10").collect::<Vec<_>>(), ["ben"]);
        assert_eq!(s.users_of("2").count(), 0);
        assert!(s.contains("10") && !s.contains("") && !s.contains("91"));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [
                ("1", "ana"),
                ("1", "abe"),
                ("10", "ben"),
                ("9", "zed"),
                ("9", "amy")
            ]
        );
        assert_eq!(s.pairs(), 5);
        let mut order = Vec::new();
        s.each_in_order(&mut |x| order.push(x.to_string()));
        assert_eq!(order, ["1", "10", "9"]);
    }

    #[test]
    fn a_subject_is_never_mistaken_for_a_neighbour_in_the_text() {
        // "ab"+"c" and "a"+"bc" are the same text: the lengths keep them apart
        let s = built(&[("ab", "c"), ("a", "bc"), ("", "empty")]);
        assert_eq!(s.users_of("ab").collect::<Vec<_>>(), ["c"]);
        assert_eq!(s.users_of("a").collect::<Vec<_>>(), ["bc"]);
        assert_eq!(s.users_of("").collect::<Vec<_>>(), ["empty"]);
        assert!(!s.contains("abc"));
        assert!(Subjects::is_empty(&built(&[])));
        assert_eq!(built(&[]).subjects().count(), 0);
    }

    #[test]
    fn unicode_subjects_and_names_come_back_whole() {
        let s = built(&[("josé", "ñandú"), ("é", "ü")]);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [("josé", "ñandú"), ("é", "ü")]
        );
    }
}
