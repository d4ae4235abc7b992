//! The service graph's strongly connected components (Tarjan's algorithm, iterative so that a long
//! chain cannot exhaust the stack), and the cycle path inside one. Linear in services plus edges:
//! however the rows point at each other, nothing here loops.

use std::collections::VecDeque;

/// The strongly connected components of `edges` (node → the nodes it depends on), each a list of
/// nodes, in reverse topological order: every component comes after all those it depends on.
pub fn components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut found = Vec::new();
    let mut next = 0;
    // (node, the position in its edges to look at next)
    let mut calls: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        calls.push((root, 0));
        while let Some(&mut (node, ref mut at)) = calls.last_mut() {
            if *at == 0 && index[node] == UNSEEN {
                index[node] = next;
                low[node] = next;
                next += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&to) = edges[node].get(*at) {
                *at += 1;
                if index[to] == UNSEEN {
                    calls.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(index[to]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                found.push(component);
            }
        }
    }
    found
}

/// The shortest path `from` → … → `to` along `edges`, staying inside `within` (a component's
/// membership test); `None` when there is none.
pub fn path(
    edges: &[Vec<usize>],
    from: usize,
    to: usize,
    within: impl Fn(usize) -> bool,
) -> Option<Vec<usize>> {
    let mut came_from = std::collections::HashMap::new();
    let mut queue = VecDeque::from([from]);
    came_from.insert(from, from);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to];
            let mut at = to;
            while at != from {
                at = came_from[&at];
                path.push(at);
            }
            path.reverse();
            return Some(path);
        }
        for &next in &edges[node] {
            if within(next) && !came_from.contains_key(&next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut components: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
        for c in &mut components {
            c.sort_unstable();
        }
        components
    }

    #[test]
    fn a_chain_comes_out_dependencies_first() {
        // 0 → 1 → 2
        assert_eq!(
            sorted(components(&[vec![1], vec![2], vec![]])),
            [[2], [1], [0]]
        );
    }

    #[test]
    fn cycles_are_one_component_and_the_path_closes_them() {
        // 0 → 1 → 2 → 0, 2 → 3, 4 → 4
        let edges = [vec![1], vec![2], vec![0, 3], vec![], vec![4]];
        assert_eq!(
            sorted(components(&edges)),
            [vec![3], vec![0, 1, 2], vec![4]]
        );
        assert_eq!(path(&edges, 1, 0, |n| n < 3), Some(vec![1, 2, 0]));
        assert_eq!(path(&edges, 4, 4, |n| n == 4), Some(vec![4]));
        assert_eq!(path(&edges, 3, 0, |_| true), None);
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        let n = 200_000;
        let edges: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        let found = components(&edges);
        assert_eq!(found.len(), n);
        assert_eq!(found[0], [n - 1]);
    }
}
