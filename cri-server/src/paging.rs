//! The `Stream*` list RPCs of CRI v0.36 (KEP-5825): the answer of a list
//! RPC cut into pages of at most [`PAGE_BYTES`] encoded bytes, each with at
//! least one item, so that a node with 10,000 containers never meets a
//! client's message size limit (grpc-go's default receive limit is 4 MiB,
//! kubelet's 16 MiB). An empty list is a stream with no message at all.

use std::pin::Pin;

use prost::Message;
use tokio_stream::Stream;
use tonic::Status;

/// The encoded size a page stays under (unless one item alone is larger).
pub const PAGE_BYTES: usize = 1 << 20;

/// A server stream of pages.
pub type PageStream<R> = Pin<Box<dyn Stream<Item = Result<R, Status>> + Send + 'static>>;

/// `items` in order, cut into pages of at most `budget` encoded bytes (an
/// item larger than that is a page of its own).
pub fn cut<T: Message>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut page = Vec::new();
    let mut size = 0;
    for item in items {
        // The item's bytes inside the repeated field: tag, length, body.
        let len = item.encoded_len();
        let framed = 1 + prost::length_delimiter_len(len) + len;
        if !page.is_empty() && size + framed > budget {
            pages.push(std::mem::take(&mut page));
            size = 0;
        }
        size += framed;
        page.push(item);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// The stream of `items` in pages of [`PAGE_BYTES`], each wrapped by `wrap`.
pub fn pages<T: Message, R: Send + 'static>(
    items: Vec<T>,
    wrap: impl Fn(Vec<T>) -> R,
) -> PageStream<R> {
    // Sizing thousands of items (and dropping them, for a large list):
    // CPU work, off the async worker.
    let pages: Vec<Result<R, Status>> = corten_runtime::blocking::run(|| {
        cut(items, PAGE_BYTES)
            .into_iter()
            .map(|page| Ok(wrap(page)))
            .collect()
    });
    Box::pin(tokio_stream::iter(pages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corten_cri_api::v1::{Container, ContainerMetadata};

    fn container(i: usize, pad: usize) -> Container {
        Container {
            id: format!("{i:064}"),
            metadata: Some(ContainerMetadata {
                name: "x".repeat(pad),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_empty_list_is_no_page() {
        assert!(cut(Vec::<Container>::new(), 100).is_empty());
    }

    #[test]
    fn pages_keep_order_and_every_item_once_within_the_budget() {
        let items: Vec<Container> = (0..1000).map(|i| container(i, i % 37)).collect();
        let budget = 4096;
        let pages = cut(items.clone(), budget);
        assert!(pages.len() > 1);
        for page in &pages {
            assert!(!page.is_empty());
            let encoded = corten_cri_api::v1::ListContainersResponse {
                containers: page.clone(),
            }
            .encoded_len();
            assert!(encoded <= budget, "a page of {encoded} bytes");
        }
        let flat: Vec<Container> = pages.into_iter().flatten().collect();
        assert_eq!(flat, items);
    }

    #[test]
    fn an_item_larger_than_the_budget_is_a_page_of_its_own() {
        let items = vec![container(0, 10), container(1, 500), container(2, 10)];
        let pages = cut(items, 200);
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }
}
