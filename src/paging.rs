//! A token-paged listing (ListObjectsV2, the GCS JSON API) as one lazy stream: the next
//! page is fetched only when the consumer has taken the previous one, so a bucket of any
//! size is never held in memory. A failed page ends the stream with its error.

use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;

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

#[cfg(test)]
mod tests {
    use super::*;

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
