//! A plan as one change's author saw it, read from a document that may hold more: the
//! document as it stands, or the document read at the change's dependencies (Automerge's
//! historical reads), so a chain of changes can be applied in one batch and each still judged
//! in its author's view (`docs/design.md`, "Applying each change once").

use std::ops::RangeBounds;

use automerge::iter::{DocIter, Keys, ListRange, MapRange, Spans, Values};
use automerge::marks::{Mark, MarkSet};
use automerge::{
    AutomergeError, Cursor, CursorPosition, MoveCursor, ObjId, Parents, ReadDoc, Stats,
    TextEncoding,
};

use super::*;

/// The document `doc` as it stands (`at` None), or as it stood at the heads `at`: every read
/// through [`ReadDoc`] sees only the changes `at` and their ancestors hold, as a fork at `at`
/// would.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    doc: &'a Automerge,
    at: Option<&'a [ChangeHash]>,
    /// With `at`: the operations of the changes applied together, by id.
    batch: Option<&'a BatchOps>,
}

/// The operations of changes applied together, by id (counter, author): each one's object and
/// whether it inserts an element.
pub(crate) type BatchOps = HashMap<(u64, ActorId), (ObjectId, bool)>;

impl<'a> View<'a> {
    /// The document as it stands.
    pub(crate) fn whole(doc: &'a Automerge) -> Self {
        View {
            doc,
            at: None,
            batch: None,
        }
    }

    /// The document at `heads` (each one a change `doc` holds), where the changes of `batch`
    /// were applied together.
    pub(crate) fn at(doc: &'a Automerge, heads: &'a [ChangeHash], batch: &'a BatchOps) -> Self {
        View {
            doc,
            at: Some(heads),
            batch: Some(batch),
        }
    }

    /// Whether the view is the document at some heads, past which it holds more.
    pub(crate) fn is_past(&self) -> bool {
        self.at.is_some()
    }

    /// The object of operation `id`, and whether it inserts an element, when one of the
    /// changes applied together made it.
    pub(crate) fn batch_op(&self, id: &OpId) -> Option<&'a (ObjectId, bool)> {
        self.batch?.get(&(id.0, id.1.clone()))
    }

    /// The heads of the view.
    pub(crate) fn heads(&self) -> Vec<ChangeHash> {
        match self.at {
            Some(heads) => heads.to_vec(),
            None => self.doc.get_heads(),
        }
    }

    /// The view as a document of its own (with its own actor id).
    pub(crate) fn fork(&self) -> Result<Automerge, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.fork_at(heads),
            None => Ok(self.doc.fork()),
        }
    }

    /// An object id written as `counter@actor`, as the document knows it (whether the view
    /// holds it is for the reads to say).
    pub(crate) fn import_obj(&self, id: &str) -> Result<ObjId, AutomergeError> {
        self.doc.import_obj(id)
    }

    /// The whole document, past the view's heads too: only for what names changes by hash or
    /// operation id, once the caller knows the view holds what it looks up.
    pub(crate) fn document(&self) -> &'a Automerge {
        self.doc
    }

    fn heads_or<'h>(&'h self, given: Option<&'h [ChangeHash]>) -> Option<&'h [ChangeHash]> {
        given.or(self.at)
    }
}

/// Every read forwards to the document's own read at the view's heads.
impl ReadDoc for View<'_> {
    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Parents<'_>, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.parents_at(obj, heads),
            None => self.doc.parents(obj),
        }
    }

    fn parents_at<O: AsRef<ObjId>>(
        &self,
        obj: O,
        heads: &[ChangeHash],
    ) -> Result<Parents<'_>, AutomergeError> {
        self.doc.parents_at(obj, heads)
    }

    fn keys<O: AsRef<ObjId>>(&self, obj: O) -> Keys<'_> {
        match self.at {
            Some(heads) => self.doc.keys_at(obj, heads),
            None => self.doc.keys(obj),
        }
    }

    fn keys_at<O: AsRef<ObjId>>(&self, obj: O, heads: &[ChangeHash]) -> Keys<'_> {
        self.doc.keys_at(obj, heads)
    }

    fn iter_at<O: AsRef<ObjId>>(&self, obj: O, heads: Option<&[ChangeHash]>) -> DocIter<'_> {
        self.doc.iter_at(obj, self.heads_or(heads))
    }

    fn map_range<'b, O: AsRef<ObjId>, R: RangeBounds<String> + 'b>(
        &'b self,
        obj: O,
        range: R,
    ) -> MapRange<'b> {
        match self.at {
            Some(heads) => self.doc.map_range_at(obj, range, heads),
            None => self.doc.map_range(obj, range),
        }
    }

    fn map_range_at<'b, O: AsRef<ObjId>, R: RangeBounds<String> + 'b>(
        &'b self,
        obj: O,
        range: R,
        heads: &[ChangeHash],
    ) -> MapRange<'b> {
        self.doc.map_range_at(obj, range, heads)
    }

    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(
        &self,
        obj: O,
        range: R,
    ) -> ListRange<'_> {
        match self.at {
            Some(heads) => self.doc.list_range_at(obj, range, heads),
            None => self.doc.list_range(obj, range),
        }
    }

    fn list_range_at<O: AsRef<ObjId>, R: RangeBounds<usize>>(
        &self,
        obj: O,
        range: R,
        heads: &[ChangeHash],
    ) -> ListRange<'_> {
        self.doc.list_range_at(obj, range, heads)
    }

    fn values<O: AsRef<ObjId>>(&self, obj: O) -> Values<'_> {
        match self.at {
            Some(heads) => self.doc.values_at(obj, heads),
            None => self.doc.values(obj),
        }
    }

    fn values_at<O: AsRef<ObjId>>(&self, obj: O, heads: &[ChangeHash]) -> Values<'_> {
        self.doc.values_at(obj, heads)
    }

    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        match self.at {
            Some(heads) => self.doc.length_at(obj, heads),
            None => self.doc.length(obj),
        }
    }

    fn length_at<O: AsRef<ObjId>>(&self, obj: O, heads: &[ChangeHash]) -> usize {
        self.doc.length_at(obj, heads)
    }

    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Result<ObjType, AutomergeError> {
        self.doc.object_type(obj)
    }

    fn marks<O: AsRef<ObjId>>(&self, obj: O) -> Result<Vec<Mark>, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.marks_at(obj, heads),
            None => self.doc.marks(obj),
        }
    }

    fn marks_at<O: AsRef<ObjId>>(
        &self,
        obj: O,
        heads: &[ChangeHash],
    ) -> Result<Vec<Mark>, AutomergeError> {
        self.doc.marks_at(obj, heads)
    }

    fn get_marks<O: AsRef<ObjId>>(
        &self,
        obj: O,
        index: usize,
        heads: Option<&[ChangeHash]>,
    ) -> Result<MarkSet, AutomergeError> {
        self.doc.get_marks(obj, index, self.heads_or(heads))
    }

    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.text_at(obj, heads),
            None => self.doc.text(obj),
        }
    }

    fn text_at<O: AsRef<ObjId>>(
        &self,
        obj: O,
        heads: &[ChangeHash],
    ) -> Result<String, AutomergeError> {
        self.doc.text_at(obj, heads)
    }

    fn spans<O: AsRef<ObjId>>(&self, obj: O) -> Result<Spans<'_>, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.spans_at(obj, heads),
            None => self.doc.spans(obj),
        }
    }

    fn spans_at<O: AsRef<ObjId>>(
        &self,
        obj: O,
        heads: &[ChangeHash],
    ) -> Result<Spans<'_>, AutomergeError> {
        self.doc.spans_at(obj, heads)
    }

    fn get_cursor<O: AsRef<ObjId>, I: Into<CursorPosition>>(
        &self,
        obj: O,
        position: I,
        at: Option<&[ChangeHash]>,
    ) -> Result<Cursor, AutomergeError> {
        self.doc.get_cursor(obj, position, self.heads_or(at))
    }

    fn get_cursor_moving<O: AsRef<ObjId>, I: Into<CursorPosition>>(
        &self,
        obj: O,
        position: I,
        at: Option<&[ChangeHash]>,
        move_cursor: MoveCursor,
    ) -> Result<Cursor, AutomergeError> {
        self.doc
            .get_cursor_moving(obj, position, self.heads_or(at), move_cursor)
    }

    fn get_cursor_position<O: AsRef<ObjId>>(
        &self,
        obj: O,
        cursor: &Cursor,
        at: Option<&[ChangeHash]>,
    ) -> Result<usize, AutomergeError> {
        self.doc.get_cursor_position(obj, cursor, self.heads_or(at))
    }

    fn get<O: AsRef<ObjId>, P: Into<Prop>>(
        &self,
        obj: O,
        prop: P,
    ) -> Result<Option<(automerge::Value<'_>, ObjId)>, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.get_at(obj, prop, heads),
            None => self.doc.get(obj, prop),
        }
    }

    fn get_at<O: AsRef<ObjId>, P: Into<Prop>>(
        &self,
        obj: O,
        prop: P,
        heads: &[ChangeHash],
    ) -> Result<Option<(automerge::Value<'_>, ObjId)>, AutomergeError> {
        self.doc.get_at(obj, prop, heads)
    }

    fn hydrate<O: AsRef<ObjId>>(
        &self,
        obj: O,
        heads: Option<&[ChangeHash]>,
    ) -> Result<automerge::hydrate::Value, AutomergeError> {
        ReadDoc::hydrate(self.doc, obj, self.heads_or(heads))
    }

    fn get_all<O: AsRef<ObjId>, P: Into<Prop>>(
        &self,
        obj: O,
        prop: P,
    ) -> Result<Vec<(automerge::Value<'_>, ObjId)>, AutomergeError> {
        match self.at {
            Some(heads) => self.doc.get_all_at(obj, prop, heads),
            None => self.doc.get_all(obj, prop),
        }
    }

    fn get_all_at<O: AsRef<ObjId>, P: Into<Prop>>(
        &self,
        obj: O,
        prop: P,
        heads: &[ChangeHash],
    ) -> Result<Vec<(automerge::Value<'_>, ObjId)>, AutomergeError> {
        self.doc.get_all_at(obj, prop, heads)
    }

    fn get_missing_deps(&self, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(heads)
    }

    fn get_change_by_hash(&self, hash: &ChangeHash) -> Option<Change> {
        self.doc.get_change_by_hash(hash)
    }

    fn stats(&self) -> Stats {
        self.doc.stats()
    }

    fn text_encoding(&self) -> TextEncoding {
        self.doc.text_encoding()
    }
}
