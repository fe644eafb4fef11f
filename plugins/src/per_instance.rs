//! Per-request state of plugins of which a route may stack several instances (a per-user and a
//! per-team limit, two budgets): each instance keeps its value under its own name in the
//! request's extensions.

use tollgate_plugin_api::RequestCtx;

/// The values of every instance of one kind, in the order they were kept.
struct PerInstance<T>(Vec<(String, T)>);

/// Keeps `value` for the instance `name` on this request.
pub fn keep<T: Send + Sync + 'static>(cx: &mut RequestCtx, name: &str, value: T) {
    match cx.extensions.get_mut::<PerInstance<T>>() {
        Some(kept) => kept.0.push((name.to_string(), value)),
        None => {
            cx.extensions
                .insert(PerInstance(vec![(name.to_string(), value)]));
        }
    }
}

/// What the instance `name` kept on this request.
pub fn kept<'a, T: Send + Sync + 'static>(cx: &'a RequestCtx, name: &str) -> Option<&'a T> {
    cx.extensions
        .get::<PerInstance<T>>()?
        .0
        .iter()
        .find(|(instance, _)| instance == name)
        .map(|(_, value)| value)
}
