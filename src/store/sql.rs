//! SQL text both backends' rooms share: the columns a claim hands out, and `$n` parameter
//! lists for sqlx's numbered parameters.

use super::Queue;

/// The columns a claim returns, per queue (the fields of `ClaimedEvent` and
/// `ClaimedNotice`, in order).
pub(super) fn claimed_columns(queue: Queue) -> &'static str {
    match queue {
        Queue::Events => "id, event_type, payload, attempts, received_at, attempts_since",
        Queue::Notices => {
            "id, event_id, kind, recipient, subject, content, html, attempts, created_at, \
             event_received_at, attempts_since"
        }
    }
}

/// `($1, $2, …), ($7, …)` for `rows` rows. Each row's columns take the parameters named in
/// `columns` (1-based within the row), so one bound value can fill several columns.
pub(super) fn values_list(rows: usize, columns: &[usize]) -> String {
    let per_row = columns.iter().copied().max().unwrap_or(0);
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = columns
                .iter()
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, …` (`n` parameters), for `IN (…)` lists.
pub(super) fn param_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_number_rows_and_reuse_values() {
        assert_eq!(values_list(2, &[1, 2, 2]), "($1, $2, $2), ($3, $4, $4)");
        assert_eq!(param_list(3, 3), "$3, $4, $5");
        assert_eq!(param_list(3, 0), "");
    }
}
