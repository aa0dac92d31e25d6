//! The mixture-of-experts feed-forward network: a router picks `used` of `count` experts per
//! token, and the token's output is the weighted sum of those experts' gated feed-forward
//! networks. Tokens are grouped by expert, so each selected expert's weights are read once per
//! step for all its tokens, and experts no token selects are never touched.

use uma_gguf::tensor_names::LayerTensor;

use crate::backend::{Backend, GatedProducts, Rows};
use crate::blocks::{SublayerInput, SublayerOutput};
use crate::config::{ExpertConfig, ExpertGating, ExpertGroups, HiddenActivation};
use crate::error::{ModelError, Result};
use crate::forward::ForwardPass;
use crate::layers::softmax_in_place;
use crate::weights::LayerLoader;

/// One layer's router and experts.
pub(crate) struct MoeFeedForward<B: Backend> {
    router: B::Matrix,    // [count, hidden_size]: one logit per expert
    gate: Vec<B::Matrix>, // per expert [feed_forward_length, hidden_size]
    up: Vec<B::Matrix>,   // per expert [feed_forward_length, hidden_size]
    down: Vec<B::Matrix>, // per expert [hidden_size, feed_forward_length]
    experts: ExpertConfig,
    activation: HiddenActivation,
    shared: Option<SharedExpert<B>>,
    biases: Option<ExpertBiases<B>>,
    /// Added to the probabilities when choosing experts, not when weighting them (DeepSeek V3's
    /// `exp_probs_b`), on the host where routing runs.
    selection_bias: Option<Vec<f32>>, // [count]
}

/// Biases of the router and of every expert's products (gpt-oss: `ffn_gate_inp.bias` and
/// `ffn_{gate,up,down}_exps.bias`).
struct ExpertBiases<B: Backend> {
    router: B::Vector,    // [count]
    gate: Vec<B::Vector>, // per expert [feed_forward_length]
    up: Vec<B::Vector>,   // per expert [feed_forward_length]
    down: Vec<B::Vector>, // per expert [hidden_size]
}

/// An expert every token runs through, its output scaled by a sigmoid gate of its own
/// (Qwen2-MoE's `shared_expert` and `shared_expert_gate`) or added as it is (DeepSeek's).
struct SharedExpert<B: Backend> {
    gate_inp: Option<B::Matrix>, // [1, hidden_size]
    gate: B::Matrix,             // [width, hidden_size]
    up: B::Matrix,               // [width, hidden_size]
    down: B::Matrix,             // [hidden_size, width]
    width: usize,
}

impl<B: Backend> MoeFeedForward<B> {
    /// `ffn_gate_inp` and the stacked `ffn_{gate,up,down}_exps` of the layer.
    pub(crate) fn load(w: &LayerLoader<'_, B>, activation: HiddenActivation) -> Result<Self> {
        let c = w.config();
        let experts = c.experts.ok_or(ModelError::InvalidConfig {
            name: "num_experts",
            reason: "a mixture-of-experts layer in a model without experts".into(),
        })?;
        let (h, ffn, count) = (c.hidden_size, experts.feed_forward_length, experts.count);
        Ok(MoeFeedForward {
            router: w.matrix(LayerTensor::FfnGateInp, count, h)?,
            gate: w.experts(LayerTensor::FfnGateExps, ffn, h, count)?,
            up: w.experts(LayerTensor::FfnUpExps, ffn, h, count)?,
            down: w.experts(LayerTensor::FfnDownExps, h, ffn, count)?,
            experts,
            activation,
            shared: None,
            biases: None,
            selection_bias: None,
        })
    }

    /// With the router's and every expert's biases (`ffn_gate_inp.bias`,
    /// `ffn_{gate,up,down}_exps.bias`, the last three `[width, count]`).
    pub(crate) fn with_biases(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let (h, ffn, count) =
            (w.config().hidden_size, self.experts.feed_forward_length, self.experts.count);
        let biases = ExpertBiases {
            router: w.bias(LayerTensor::FfnGateInp, count)?,
            gate: w.expert_biases(LayerTensor::FfnGateExps, ffn, count)?,
            up: w.expert_biases(LayerTensor::FfnUpExps, ffn, count)?,
            down: w.expert_biases(LayerTensor::FfnDownExps, h, count)?,
        };
        Ok(MoeFeedForward { biases: Some(biases), ..self })
    }

    /// With the shared expert of `width` behind its gate: `ffn_gate_inp_shexp`
    /// (`[hidden_size]`) and `ffn_{gate,up,down}_shexp`.
    pub(crate) fn with_shared_expert(self, w: &LayerLoader<'_, B>, width: usize) -> Result<Self> {
        let gate_inp = w.row_matrix(LayerTensor::FfnGateInpShexp, w.config().hidden_size)?;
        self.with_shared(w, width, Some(gate_inp))
    }

    /// With the shared experts of `width` in all, added without a gate (DeepSeek:
    /// `ffn_{gate,up,down}_shexp`).
    pub(crate) fn with_ungated_shared_expert(
        self,
        w: &LayerLoader<'_, B>,
        width: usize,
    ) -> Result<Self> {
        self.with_shared(w, width, None)
    }

    fn with_shared(
        self,
        w: &LayerLoader<'_, B>,
        width: usize,
        gate_inp: Option<B::Matrix>,
    ) -> Result<Self> {
        let h = w.config().hidden_size;
        let [gate, up] =
            w.matrices([(LayerTensor::FfnGateShexp, width), (LayerTensor::FfnUpShexp, width)], h)?;
        let down = w.matrix(LayerTensor::FfnDownShexp, h, width)?;
        let shared = SharedExpert { gate_inp, gate, up, down, width };
        Ok(MoeFeedForward { shared: Some(shared), ..self })
    }

    /// With a bias on the probabilities that choose the experts (`exp_probs_b.bias`).
    pub(crate) fn with_selection_bias(self, w: &LayerLoader<'_, B>) -> Result<Self> {
        let bias = w.host_bias(LayerTensor::ExpProbsB, self.experts.count)?;
        Ok(MoeFeedForward { selection_bias: Some(bias), ..self })
    }

    /// The network applied to the normed `x` (see [`SublayerInput`]), into `output`.
    pub(crate) fn forward(
        &self,
        f: &mut ForwardPass<'_, B>,
        input: SublayerInput<'_, B>,
        output: SublayerOutput,
    ) -> Result<()> {
        let ForwardPass { ops, config: c, scratch: s, x, num_tokens, .. } = f;
        let (n, h, ffn) = (*num_tokens, c.hidden_size, self.experts.feed_forward_length);
        if let SublayerInput::Norm(norm) = input {
            B::rms_norm(ops, x, Rows::All, norm, c.rms_norm_eps, &mut s.normed);
        }
        let mut logits = B::activations(ops, n, self.experts.count);
        B::matmul(ops, &self.router, &s.normed, &mut logits)?;
        if let Some(biases) = &self.biases {
            B::add_bias(ops, &mut logits, &biases.router);
        }
        let logits = B::host(ops, &logits)?.into_owned();
        let mut out = B::activations(ops, n, h);
        let bias = self.selection_bias.as_deref();
        let routes = routes(&logits, &self.experts, bias);
        let chosen: Vec<(usize, &Route)> =
            routes.iter().enumerate().filter(|(_, route)| !route.rows.is_empty()).collect();
        let inputs = chosen
            .iter()
            .map(|(_, route)| B::gather_rows(ops, &s.normed, h, &route.rows))
            .collect::<Result<Vec<_>>>()?;
        let ys = self.expert_networks(ops, &chosen, &inputs, h, ffn)?;
        for ((_, route), y) in chosen.iter().zip(&ys) {
            B::add_rows_scaled(ops, &mut out, h, &route.rows, &route.weights, y)?;
        }
        if let Some(shared) = &self.shared {
            let network = (&shared.gate, &shared.up, &shared.down, shared.width, self.activation);
            let y = gated_network::<B>(ops, network, &s.normed, n, h)?;
            match &shared.gate_inp {
                Some(gate_inp) => {
                    let mut gate = B::activations(ops, n, 1);
                    B::matmul(ops, gate_inp, &s.normed, &mut gate)?;
                    let weights: Vec<f32> =
                        B::host(ops, &gate)?.iter().map(|&g| sigmoid(g)).collect();
                    let every_row: Vec<usize> = (0..n).collect();
                    B::add_rows_scaled(ops, &mut out, h, &every_row, &weights, &y)?;
                }
                None => B::add(ops, &mut out, &y),
            }
        }
        match output {
            SublayerOutput::Scratch => s.out = out,
            SublayerOutput::Residual => B::add(ops, x, &out),
        }
        Ok(())
    }

    /// The networks of the `chosen` experts (index, route), each on its `inputs` rows, with
    /// every product of a kind in one call for all of them (llama.cpp's `mul_mat_id`): on the CPU
    /// one parallel region for the gate and up products of all experts and one for the down
    /// products (the activations between them still run per expert).
    fn expert_networks(
        &self,
        ops: &mut B::Pass<'_>,
        chosen: &[(usize, &Route)],
        inputs: &[B::Activations],
        hidden: usize,
        width: usize,
    ) -> Result<Vec<B::Activations>> {
        let rows = |i: usize| chosen[i].1.rows.len();
        let mut gs: Vec<_> =
            (0..chosen.len()).map(|i| B::activations(ops, rows(i), width)).collect();
        let mut us: Vec<_> =
            (0..chosen.len()).map(|i| B::activations(ops, rows(i), width)).collect();
        let experts = chosen.iter().map(|&(e, _)| e);
        match &self.biases {
            None => {
                let mut items: Vec<GatedProducts<'_, B>> = experts
                    .zip(inputs)
                    .zip(gs.iter_mut().zip(us.iter_mut()))
                    .map(|((e, x), (g, u))| (&self.gate[e], &self.up[e], x, g, u))
                    .collect();
                B::gated_matmul_each(ops, &mut items, self.activation)?;
            }
            Some(b) => {
                let mut products = Vec::with_capacity(2 * chosen.len());
                for ((e, x), (g, u)) in
                    experts.clone().zip(inputs).zip(gs.iter_mut().zip(us.iter_mut()))
                {
                    products.push((&self.gate[e], x, g));
                    products.push((&self.up[e], x, u));
                }
                B::matmul_each(ops, &mut products)?;
                for (e, (g, u)) in experts.zip(gs.iter_mut().zip(us.iter_mut())) {
                    B::add_biases(ops, &mut [(&mut *g, &b.gate[e]), (&mut *u, &b.up[e])]);
                    B::gated_activation(ops, g, u, self.activation);
                }
            }
        }
        let mut ys: Vec<_> =
            (0..chosen.len()).map(|i| B::activations(ops, rows(i), hidden)).collect();
        let mut downs: Vec<_> = chosen
            .iter()
            .zip(&gs)
            .zip(ys.iter_mut())
            .map(|((&(e, _), g), y)| (&self.down[e], g, y))
            .collect();
        B::matmul_each(ops, &mut downs)?;
        if let Some(b) = &self.biases {
            for (&(e, _), y) in chosen.iter().zip(ys.iter_mut()) {
                B::add_bias(ops, y, &b.down[e]);
            }
        }
        Ok(ys)
    }
}

/// A gated network's matrices, width and activation: `(gate, up, down, width, activation)`.
type Network<'a, B> = (
    &'a <B as Backend>::Matrix,
    &'a <B as Backend>::Matrix,
    &'a <B as Backend>::Matrix,
    usize,
    HiddenActivation,
);

/// `down(act(gate · x) · (up · x))` of `m` rows `x`, into new activations `[m, hidden]`.
fn gated_network<B: Backend>(
    ops: &mut B::Pass<'_>,
    (gate, up, down, width, activation): Network<'_, B>,
    x: &B::Activations,
    m: usize,
    hidden: usize,
) -> Result<B::Activations> {
    let (mut g, mut u) = (B::activations(ops, m, width), B::activations(ops, m, width));
    B::gated_matmul(ops, gate, up, x, activation, &mut g, &mut u)?;
    let mut y = B::activations(ops, m, hidden);
    B::matmul(ops, down, &g, &mut y)?;
    Ok(y)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The tokens one expert runs on, with the router's weight of each.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Route {
    pub(crate) rows: Vec<usize>,
    pub(crate) weights: Vec<f32>,
}

/// Per expert, the tokens whose top `used` experts include it and the weights, from the
/// router's logits `[num_tokens, count]`: softmax (or a sigmoid) per token, the `used` largest
/// (the lower expert first on ties), rescaled to sum to one when the model does, times the
/// model's weights scale. With `selection_bias` (DeepSeek V3's `exp_probs_b`) experts are
/// chosen by probability plus bias but weighted by probability alone; with groups, only among
/// the experts of the groups whose two best biased probabilities sum highest.
pub(crate) fn routes(
    logits: &[f32],
    experts: &ExpertConfig,
    selection_bias: Option<&[f32]>,
) -> Vec<Route> {
    let mut routes = vec![Route::default(); experts.count];
    let mut order: Vec<usize> = Vec::with_capacity(experts.count);
    for (token, row) in logits.chunks_exact(experts.count).enumerate() {
        let mut probabilities = row.to_vec();
        match experts.gating {
            ExpertGating::Softmax => softmax_in_place(&mut probabilities),
            ExpertGating::Sigmoid => probabilities.iter_mut().for_each(|p| *p = sigmoid(*p)),
            ExpertGating::SoftmaxOfSelected => {}
        }
        let mut selection = probabilities.clone();
        if let Some(bias) = selection_bias {
            selection.iter_mut().zip(bias).for_each(|(s, &b)| *s += b);
        }
        if let Some(groups) = experts.groups {
            keep_best_groups(&mut selection, groups);
        }
        order.clear();
        order.extend(0..experts.count);
        // Stable: equal scores keep the lower expert first.
        order.sort_by(|&a, &b| selection[b].total_cmp(&selection[a]));
        let chosen = &order[..experts.used];
        if experts.gating == ExpertGating::SoftmaxOfSelected {
            let mut selected: Vec<f32> = chosen.iter().map(|&e| row[e]).collect();
            softmax_in_place(&mut selected);
            chosen.iter().zip(&selected).for_each(|(&e, &p)| probabilities[e] = p);
        }
        let total: f32 = chosen.iter().map(|&e| probabilities[e]).sum();
        let scale = if experts.normalize_weights && total > 0.0 { 1.0 / total } else { 1.0 };
        for &expert in chosen {
            routes[expert].rows.push(token);
            routes[expert].weights.push(probabilities[expert] * scale * experts.weights_scale);
        }
    }
    routes
}

/// Sets every score outside the `groups.used` best groups to −∞: a group's score is the sum of
/// its two best (llama.cpp's and DeepSeek's rule; its best alone for groups of one).
fn keep_best_groups(scores: &mut [f32], groups: ExpertGroups) {
    let per_group = scores.len() / groups.count;
    let group_score = |g: usize| {
        let mut best = [f32::NEG_INFINITY; 2];
        for &s in &scores[g * per_group..(g + 1) * per_group] {
            if s > best[0] {
                best = [s, best[0]];
            } else if s > best[1] {
                best[1] = s;
            }
        }
        if per_group == 1 {
            best[0]
        } else {
            best[0] + best[1]
        }
    };
    let mut order: Vec<usize> = (0..groups.count).collect();
    let group_scores: Vec<f32> = order.iter().map(|&g| group_score(g)).collect();
    order.sort_by(|&a, &b| group_scores[b].total_cmp(&group_scores[a]));
    for &g in &order[groups.used..] {
        scores[g * per_group..(g + 1) * per_group].fill(f32::NEG_INFINITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(count: usize, used: usize, normalize_weights: bool) -> ExpertConfig {
        ExpertConfig {
            count,
            used,
            feed_forward_length: 8,
            gating: ExpertGating::Softmax,
            normalize_weights,
            shared_feed_forward_length: None,
            groups: None,
            weights_scale: 1.0,
            leading_dense_layers: 0,
        }
    }

    #[test]
    fn each_token_goes_to_its_top_experts_with_softmax_weights() {
        // Token 0 prefers experts 2 then 0; token 1 prefers 1 then 2.
        let logits = [1.0, -1.0, 2.0, 0.0, /* token 1 */ 0.0, 3.0, 1.0, -2.0];
        let routes = routes(&logits, &config(4, 2, false), None);
        let softmax = |row: &[f32], i: usize| {
            let sum: f32 = row.iter().map(|l| l.exp()).sum();
            row[i].exp() / sum
        };
        let (t0, t1) = (&logits[..4], &logits[4..]);
        let expected = [
            (vec![0], vec![softmax(t0, 0)]),
            (vec![1], vec![softmax(t1, 1)]),
            (vec![0, 1], vec![softmax(t0, 2), softmax(t1, 2)]),
            (vec![], vec![]), // an expert no token picks runs on nothing
        ];
        for (route, (rows, weights)) in routes.iter().zip(expected) {
            assert_eq!(route.rows, rows);
            for (got, want) in route.weights.iter().zip(&weights) {
                assert!((got - want).abs() < 1e-6, "{got} against {want}");
            }
        }
    }

    #[test]
    fn softmax_of_selected_picks_by_logit_then_normalises_the_chosen() {
        let experts =
            ExpertConfig { gating: ExpertGating::SoftmaxOfSelected, ..config(4, 2, false) };
        let logits = [0.5, 3.0, -1.0, 2.0];
        let routes = routes(&logits, &experts, None);
        let (e1, e3) = (3.0f32.exp(), 2.0f32.exp());
        assert_eq!((routes[1].rows.clone(), routes[3].rows.clone()), (vec![0], vec![0]));
        assert!(routes[0].rows.is_empty() && routes[2].rows.is_empty());
        assert!((routes[1].weights[0] - e1 / (e1 + e3)).abs() < 1e-6);
        assert!((routes[3].weights[0] - e3 / (e1 + e3)).abs() < 1e-6);
    }

    /// DeepSeek V3: sigmoid probabilities, chosen by probability plus bias among the best
    /// groups (a group's two best summed), weighted by probability, rescaled, then scaled.
    #[test]
    fn group_limited_routing_with_a_selection_bias() {
        let experts = ExpertConfig {
            gating: ExpertGating::Sigmoid,
            groups: Some(ExpertGroups { count: 3, used: 2 }),
            weights_scale: 2.5,
            ..config(6, 2, true)
        };
        // Groups (0, 1), (2, 3), (4, 5). Biased scores: 0.9+0.0, 0.1+0.0 | 0.8-0.5, 0.7+0.5 |
        // 0.6+0.3, 0.5+0.3: group sums 1.0, 1.5, 1.7, so group 0 is left out although expert 0
        // has the best probability; then experts 3 (1.2) and 4 (0.9) win over 5 (0.8).
        let probabilities = [0.9f32, 0.1, 0.8, 0.7, 0.6, 0.5];
        let logits: Vec<f32> = probabilities.iter().map(|p| (p / (1.0 - p)).ln()).collect();
        let bias = [0.0, 0.0, -0.5, 0.5, 0.3, 0.3];
        let routes = routes(&logits, &experts, Some(&bias));
        let chosen: Vec<usize> = (0..6).filter(|&e| !routes[e].rows.is_empty()).collect();
        assert_eq!(chosen, vec![3, 4]);
        let (w3, w4) = (routes[3].weights[0], routes[4].weights[0]);
        assert!((w3 - 2.5 * 0.7 / 1.3).abs() < 1e-5, "{w3}");
        assert!((w4 - 2.5 * 0.6 / 1.3).abs() < 1e-5, "{w4}");
    }

    #[test]
    fn normalized_weights_sum_to_one_and_ties_take_the_lower_expert() {
        let logits = [0.5, 0.5, 0.5, -3.0];
        let routes = routes(&logits, &config(4, 2, true), None);
        assert_eq!(routes[0].rows, vec![0]);
        assert_eq!(routes[1].rows, vec![0]);
        assert!(routes[2].rows.is_empty());
        assert!((routes[0].weights[0] - 0.5).abs() < 1e-6);
        assert!((routes[1].weights[0] - 0.5).abs() < 1e-6);
    }
}
