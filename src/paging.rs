//! A token-paged listing (ListObjectsV2, the GCS JSON API) as one lazy stream: the next
//! page is fetched only when the consumer has taken the previous one, so a bucket of any
//! size is never held in memory. A failed page ends the stream with its error.
//!
//! [`in_order`] lists several key ranges (the folders under a prefix) at once and still
//! yields exactly what one sequential listing would, in the same order: each range runs
//! ahead into a bounded buffer, and ranges are drained one after the other.
//!
//! [`walk`] lists a tree by delimiter, as `rclone lsf -R` does: it goes down through
//! narrow levels (`data/` holding only `2024/`) to the first level with enough folders
//! to keep `at_once` listings busy, then walks each of those folders on its own.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::StoreError;

/// One page: its items, and the token of the next page (`None` on the last).
pub type Page<T> = (Vec<Result<T, StoreError>>, Option<String>);

/// Calls `fetch` with no token, then with each next-page token, flattening the pages.
pub fn token_pages<'a, T, F, Fut>(fetch: F) -> BoxStream<'a, Result<T, StoreError>>
where
    T: Send + 'a,
    F: FnMut(Option<String>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page<T>, StoreError>> + Send + 'a,
{
    let pages = futures::stream::unfold(
        (Some(None::<String>), fetch),
        |(token, mut fetch)| async move {
            let token = token?;
            match fetch(token).await {
                Ok((items, next)) => Some((items, (next.map(Some), fetch))),
                Err(e) => Some((vec![Err(e)], (None, fetch))),
            }
        },
    );
    crate::object::fused(pages.flat_map(futures::stream::iter))
}

type Items<'a, T> = BoxStream<'a, Result<T, StoreError>>;

/// An entry of one level of a listing by delimiter: an object, or a folder (its full
/// prefix, ending in the delimiter) whose keys all sort together where its name sorts.
pub enum Entry<T> {
    Item(T),
    Folder(String),
}

/// How many levels [`walk`] goes down looking for one wide enough to share out.
const NARROW_LEVELS: usize = 4;

/// Every item under `root`, in key order, listed by delimiter: `level(folder, token)`
/// gives one page of a folder's own level, objects and subfolders merged in key order.
/// Up to `at_once` folders are walked at the same time, each `buffer` items ahead.
pub fn walk<'a, T, L, Fut>(root: String, level: L, at_once: usize, buffer: usize) -> Items<'a, T>
where
    T: Send + 'a,
    L: Fn(String, Option<String>) -> Fut + Clone + Send + Sync + 'a,
    Fut: Future<Output = Result<Page<Entry<T>>, StoreError>> + Send + 'a,
{
    let at_once = at_once.max(1);
    let top = level_entries(root, level.clone());
    in_order(shares(top, level, at_once, buffer, 0), at_once, buffer)
}

/// One folder's own level, page after page.
fn level_entries<'a, T, L, Fut>(folder: String, level: L) -> Items<'a, Entry<T>>
where
    T: Send + 'a,
    L: Fn(String, Option<String>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page<Entry<T>>, StoreError>> + Send + 'a,
{
    token_pages(move |token| level(folder.clone(), token))
}

/// The ranges [`walk`] shares out: a level that ends within one buffer with fewer than
/// `at_once` folders is replaced by the level below it (its folders listed at once,
/// in order); otherwise each object is a range and each folder a walked subtree.
fn shares<'a, T, L, Fut>(
    entries: Items<'a, Entry<T>>,
    level: L,
    at_once: usize,
    buffer: usize,
    depth: usize,
) -> BoxStream<'a, Items<'a, T>>
where
    T: Send + 'a,
    L: Fn(String, Option<String>) -> Fut + Clone + Send + Sync + 'a,
    Fut: Future<Output = Result<Page<Entry<T>>, StoreError>> + Send + 'a,
{
    futures::stream::once(async move {
        let mut entries = entries;
        let mut head = Vec::new();
        let mut ended = false;
        while head.len() < buffer.max(1) {
            match entries.next().await {
                Some(e) => head.push(e),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let folders = head
            .iter()
            .filter(|e| matches!(e, Ok(Entry::Folder(_))))
            .count();
        let narrow = ended
            && depth < NARROW_LEVELS
            && (1..at_once).contains(&folders)
            && head.iter().all(Result::is_ok);
        let entries = futures::stream::iter(head).chain(entries).boxed();
        if narrow {
            let lower = level.clone();
            let below = entries.map(move |e| match e {
                Ok(Entry::Folder(f)) => level_entries(f, lower.clone()),
                other => futures::stream::iter([other]).boxed(),
            });
            shares(
                in_order(below.boxed(), at_once, buffer),
                level,
                at_once,
                buffer,
                depth + 1,
            )
        } else {
            entries
                .map(move |e| match e {
                    Ok(Entry::Folder(f)) => subtree(f, level.clone()),
                    Ok(Entry::Item(t)) => futures::stream::iter([Ok(t)]).boxed(),
                    Err(e) => futures::stream::iter([Err(e)]).boxed(),
                })
                .boxed()
        }
    })
    .flatten()
    .boxed()
}

/// Every item under `folder`, in key order: its level, each subfolder walked in place.
fn subtree<'a, T, L, Fut>(folder: String, level: L) -> Items<'a, T>
where
    T: Send + 'a,
    L: Fn(String, Option<String>) -> Fut + Clone + Send + Sync + 'a,
    Fut: Future<Output = Result<Page<Entry<T>>, StoreError>> + Send + 'a,
{
    let lower = level.clone();
    level_entries(folder, level)
        .flat_map(move |e| match e {
            Ok(Entry::Folder(f)) => subtree(f, lower.clone()),
            Ok(Entry::Item(t)) => futures::stream::iter([Ok(t)]).boxed(),
            Err(e) => futures::stream::iter([Err(e)]).boxed(),
        })
        .boxed()
}

/// One range being listed: its stream, what it has read ahead, whether it has ended.
struct Running<'a, T> {
    items: Items<'a, T>,
    ahead: VecDeque<Result<T, StoreError>>,
    ended: bool,
}

/// See [`in_order`].
struct InOrder<'a, T> {
    ranges: Option<BoxStream<'a, Items<'a, T>>>,
    running: VecDeque<Running<'a, T>>,
    at_once: usize,
    buffer: usize,
}

/// The ranges' items, range after range, with up to `at_once` ranges listed at the same
/// time, each `buffer` items ahead at most: memory is `at_once × buffer` items.
pub fn in_order<'a, T: Send + 'a>(
    ranges: BoxStream<'a, Items<'a, T>>,
    at_once: usize,
    buffer: usize,
) -> Items<'a, T> {
    InOrder {
        ranges: Some(ranges),
        running: VecDeque::new(),
        at_once: at_once.max(1),
        buffer: buffer.max(1),
    }
    .boxed()
}

// Nothing in it is pinned in place: the streams are boxed, the items are moved out.
impl<T> Unpin for InOrder<'_, T> {}

impl<T> Stream for InOrder<'_, T> {
    type Item = Result<T, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            // Start ranges until `at_once` are running.
            while this.running.len() < this.at_once {
                let Some(ranges) = this.ranges.as_mut() else {
                    break;
                };
                match ranges.poll_next_unpin(cx) {
                    Poll::Ready(Some(items)) => this.running.push_back(Running {
                        items,
                        ahead: VecDeque::new(),
                        ended: false,
                    }),
                    Poll::Ready(None) => this.ranges = None,
                    Poll::Pending => break,
                }
            }
            // Let every running range read ahead, up to its buffer.
            for r in this.running.iter_mut() {
                while !r.ended && r.ahead.len() < this.buffer {
                    match r.items.poll_next_unpin(cx) {
                        Poll::Ready(Some(item)) => r.ahead.push_back(item),
                        Poll::Ready(None) => r.ended = true,
                        Poll::Pending => break,
                    }
                }
            }
            // Yield from the first range only: the order is the ranges' order.
            let Some(first) = this.running.front_mut() else {
                return match this.ranges {
                    None => Poll::Ready(None),
                    Some(_) => Poll::Pending,
                };
            };
            if let Some(item) = first.ahead.pop_front() {
                return Poll::Ready(Some(item));
            }
            if !first.ended {
                return Poll::Pending;
            }
            this.running.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A range of `n` items from `start`, each arriving after a random short delay.
    fn slow_range(start: u32, n: u32) -> Items<'static, u32> {
        futures::stream::iter(start..start + n)
            .then(|i| async move {
                tokio::time::sleep(std::time::Duration::from_micros(
                    (i * 7919 % 13) as u64 * 100,
                ))
                .await;
                Ok(i)
            })
            .boxed()
    }

    /// One page of `folder`'s own level in a bucket holding `keys`, as S3 gives it with
    /// delimiter "/": objects and subfolders merged in key order, `per_page` at a time.
    fn level_of(
        keys: &[String],
        folder: &str,
        token: Option<String>,
        per_page: usize,
    ) -> Page<Entry<String>> {
        let mut level: Vec<Entry<String>> = Vec::new();
        for k in keys.iter().filter(|k| k.starts_with(folder)) {
            let rest = &k[folder.len()..];
            match rest.find('/') {
                Some(i) => {
                    let f = format!("{folder}{}", &rest[..=i]);
                    if !matches!(level.last(), Some(Entry::Folder(last)) if *last == f) {
                        level.push(Entry::Folder(f));
                    }
                }
                None => level.push(Entry::Item(k.clone())),
            }
        }
        let from: usize = token.map_or(0, |t| t.parse().unwrap());
        let to = (from + per_page).min(level.len());
        let next = (to < level.len()).then(|| to.to_string());
        (level.drain(from..to).map(Ok).collect(), next)
    }

    async fn walked(
        keys: &[String],
        at_once: usize,
        buffer: usize,
        per_page: usize,
    ) -> Vec<String> {
        walk(
            String::new(),
            |folder: String, token| async move { Ok(level_of(keys, &folder, token, per_page)) },
            at_once,
            buffer,
        )
        .map(Result::unwrap)
        .collect()
        .await
    }

    #[tokio::test]
    async fn a_walk_gives_every_key_once_in_key_order() {
        let mut keys: Vec<String> = [
            "a",
            "a-b",
            "a/x",
            "a/y/z",
            "a0",
            "data/2024/01/a.jpg",
            "data/2024/01/b.jpg",
            "data/2024/02/c.jpg",
            "data/2024/02/d/e",
            "data/readme",
            "deep/1/2/3/4/5/6/f",
            "z/",
        ]
        .map(String::from)
        .to_vec();
        keys.extend((0..300).map(|i| format!("users/{:03}/avatar-{}.png", i % 37, i)));
        keys.sort();
        for at_once in [1, 2, 8] {
            for (buffer, per_page) in [(1, 1), (3, 2), (64, 1000)] {
                assert_eq!(
                    walked(&keys, at_once, buffer, per_page).await,
                    keys,
                    "{at_once} {buffer} {per_page}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_tree_walks_in_the_order_of_a_flat_listing(
            set in proptest::collection::btree_set("[ab/-]{1,7}", 0..60),
            at_once in 1usize..6,
            per_page in 1usize..5,
        ) {
            let keys: Vec<String> = set.into_iter().collect();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(walked(&keys, at_once, per_page + 1, per_page));
            proptest::prop_assert_eq!(got, keys);
        }
    }

    #[tokio::test]
    async fn ranges_listed_at_once_come_out_in_order() {
        let ranges = futures::stream::iter([(0, 50), (50, 1), (51, 0), (51, 200), (251, 7)])
            .map(|(s, n)| slow_range(s, n))
            .boxed();
        let got: Vec<u32> = in_order(ranges, 3, 8).map(Result::unwrap).collect().await;
        assert_eq!(got, (0..258).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn ranges_run_at_the_same_time() {
        // Eight ranges of one 50 ms item: about 50 ms at eight at once, 400 ms one by one.
        let ranges = futures::stream::iter(0..8u32)
            .map(|i| {
                futures::stream::once(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Ok(i)
                })
                .boxed()
            })
            .boxed();
        let started = std::time::Instant::now();
        let got: Vec<u32> = in_order(ranges, 8, 4).map(Result::unwrap).collect().await;
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        assert!(
            started.elapsed() < std::time::Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn an_error_comes_out_in_its_place() {
        let ranges = futures::stream::iter([
            futures::stream::iter([Ok(1u32), Ok(2)]).boxed(),
            futures::stream::iter([Ok(3), Err(StoreError::Transient("page 2".into()))]).boxed(),
        ])
        .boxed();
        let got: Vec<Result<u32, StoreError>> = in_order(ranges, 2, 1).collect().await;
        assert_eq!(got.len(), 4);
        assert!(got[3].is_err() && got[2].as_ref().is_ok_and(|v| *v == 3));
    }

    #[tokio::test]
    async fn pages_are_fetched_in_order_until_there_is_no_next_token() {
        let items: Vec<Result<u32, StoreError>> = token_pages(|token: Option<String>| async move {
            Ok(match token.as_deref() {
                None => (vec![Ok(1), Ok(2)], Some("b".to_string())),
                Some("b") => (vec![Ok(3)], None),
                Some(other) => panic!("unexpected token {other}"),
            })
        })
        .collect()
        .await;
        let got: Vec<u32> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_failed_page_ends_the_listing_with_its_error() {
        let items: Vec<Result<u32, StoreError>> = token_pages(|token: Option<String>| async move {
            match token {
                None => Ok((vec![Ok(1)], Some("b".to_string()))),
                Some(_) => Err(StoreError::Fatal("gone".into())),
            }
        })
        .collect()
        .await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(StoreError::Fatal(_))));
    }
}
