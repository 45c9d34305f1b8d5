//! The catalog's rules that are decided on what was read (the others are the database's own
//! constraints: unique SKUs and warehouse codes, foreign keys), once for both backends.

use allot_domain::catalog::CategoryId;

use super::CatalogRefusal;

/// The category `$1` and every category above it, nearest first by the walk up.
pub(crate) const CATEGORY_AND_ANCESTORS: &str = "WITH RECURSIVE up(id, parent_id) AS (
         SELECT id, parent_id FROM categories WHERE id = $1
         UNION
         SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id)
     SELECT id FROM up";

/// Whether category `id` may move under a parent whose line up the tree (the parent itself
/// first, from [`CATEGORY_AND_ANCESTORS`]) is `line`: the parent must exist, and must be
/// neither `id` nor below it, or the move would close a loop.
pub(crate) fn decide_parent(id: CategoryId, line: &[i64]) -> Result<(), CatalogRefusal> {
    if line.is_empty() {
        return Err(CatalogRefusal::ParentNotFound);
    }
    if line.contains(&id.get()) {
        return Err(CatalogRefusal::CategoryCycle);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_moves_only_under_an_existing_parent_outside_its_own_subtree() {
        let id = CategoryId::parse(2).expect("an id");
        assert_eq!(decide_parent(id, &[]), Err(CatalogRefusal::ParentNotFound));
        assert_eq!(decide_parent(id, &[2]), Err(CatalogRefusal::CategoryCycle));
        assert_eq!(
            decide_parent(id, &[5, 3, 2, 1]),
            Err(CatalogRefusal::CategoryCycle)
        );
        assert_eq!(decide_parent(id, &[5, 1]), Ok(()));
    }
}
