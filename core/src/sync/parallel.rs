//! The store's work on a run of sync messages about different plans, side by side: each
//! plan's messages in order on one thread, plans spread over a few threads (`docs/design.md`,
//! "Plans in parallel"). Used by both sides of a connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::doc_id::DocumentId;

/// Most plans worked on at once.
pub(crate) const PARALLEL_PLANS: usize = 4;

/// `work` on each item of `run`, results in `run`'s order. Items about the same document
/// (`document`) run one after another in `run`'s order on one thread; different documents run
/// on up to [`PARALLEL_PLANS`] threads, and no more than the machine's cores. One thread, or
/// one document, and everything runs here, in order.
pub(crate) fn per_plan<T: Sync, R: Send>(
    run: &[T],
    document: impl Fn(&T) -> DocumentId,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let mut plans: BTreeMap<DocumentId, Vec<usize>> = BTreeMap::new();
    for (index, item) in run.iter().enumerate() {
        plans.entry(document(item)).or_default().push(index);
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(PARALLEL_PLANS)
        .min(plans.len());
    if threads <= 1 {
        return run.iter().map(work).collect();
    }
    let plans: Vec<Vec<usize>> = plans.into_values().collect();
    let next = AtomicUsize::new(0);
    let done: parking_lot::Mutex<Vec<(usize, R)>> =
        parking_lot::Mutex::new(Vec::with_capacity(run.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(indices) = plans.get(next.fetch_add(1, Ordering::Relaxed)) {
                    for &index in indices {
                        let result = work(&run[index]);
                        done.lock().push((index, result));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner();
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in the order of the run, and one document's items run in order.
    #[test]
    fn results_keep_the_runs_order_and_each_documents_items_their_order() {
        let documents: Vec<DocumentId> = (0..5)
            .map(|_| DocumentId::from_uuid(uuid::Uuid::new_v4()))
            .collect();
        let run: Vec<(DocumentId, usize)> = (0..40).map(|n| (documents[n % 5], n)).collect();
        let seen: parking_lot::Mutex<Vec<(DocumentId, usize)>> =
            parking_lot::Mutex::new(Vec::new());
        let results = per_plan(
            &run,
            |(document, _)| *document,
            |(document, n)| {
                seen.lock().push((*document, *n));
                n * 2
            },
        );
        assert_eq!(results, (0..40).map(|n| n * 2).collect::<Vec<_>>());
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 40);
        for document in &documents {
            let order: Vec<usize> = seen
                .iter()
                .filter(|(d, _)| d == document)
                .map(|(_, n)| *n)
                .collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted);
        }
    }
}
