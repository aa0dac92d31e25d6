//! WGSL kernels: sources composed from shared parts, specialised for the device (f16 arithmetic,
//! subgroups) by a line preprocessor, compiled once into pipelines and cached by name.
//!
//! Preprocessor: lines `//#if NAME`, `//#else`, `//#endif` (nestable) keep or drop the lines
//! between them; names are the device's flags ([`ShaderFlags`]). Then `//#unroll $v COUNT` ...
//! `//#endunroll` (nestable) repeats the lines between them COUNT times, each copy in its own
//! block with `$v` replaced by `0u`, `1u`, ...; COUNT is a number or the name of a `const NAME:
//! u32 = Nu;` declared on an earlier kept line. NVIDIA's Vulkan compiler did not unroll naga's
//! loops: a function-local array indexed by a loop variable lived in slow local memory (the
//! tiled product ran 12 times faster with named registers, on an H200). Everything else is
//! plain WGSL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::GpuContext;
use crate::error::{GpuError, Result};

/// Helpers every kernel may use (2-D workgroup grids for more than 65,535 groups, f16 pairs).
pub(crate) const COMMON: &str = include_str!("shaders/common.wgsl");

/// What a kernel may be specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShaderFlags {
    /// `F16`: the device has f16 arithmetic (`enable f16;` is added).
    pub(crate) f16: bool,
    /// `SUBGROUPS`: the device has subgroup operations.
    pub(crate) subgroups: bool,
}

impl ShaderFlags {
    fn is_set(&self, name: &str, defines: &[&str]) -> Option<bool> {
        match name {
            "F16" => Some(self.f16),
            "SUBGROUPS" => Some(self.subgroups),
            _ if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
            {
                Some(defines.contains(&name))
            }
            _ => None,
        }
    }
}

/// `source` with the `//#if` blocks of `flags` and `defines` resolved.
pub(crate) fn preprocess(source: &str, flags: &ShaderFlags, defines: &[&str]) -> Result<String> {
    let mut out = String::with_capacity(source.len());
    // One entry per open `//#if`: (this branch is kept, the enclosing ones are kept).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let bad = |line: usize, what: &str| GpuError::Validation {
        reason: format!("shader preprocessor, line {}: {what}", line + 1),
    };
    for (number, line) in source.lines().enumerate() {
        let keeping = stack.last().is_none_or(|&(kept, outer)| kept && outer);
        let directive = line.trim_start();
        if let Some(name) = directive.strip_prefix("//#if ") {
            let value =
                flags.is_set(name.trim(), defines).ok_or_else(|| bad(number, "not a flag name"))?;
            stack.push((value, keeping));
        } else if directive.starts_with("//#else") {
            let top = stack.last_mut().ok_or_else(|| bad(number, "#else without #if"))?;
            top.0 = !top.0;
        } else if directive.starts_with("//#endif") {
            stack.pop().ok_or_else(|| bad(number, "#endif without #if"))?;
        } else if keeping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(bad(source.lines().count(), "#if without #endif"));
    }
    let mut out = unroll(&out)?;
    if flags.f16 && out.contains("f16") {
        out.insert_str(0, "enable f16;\n");
    }
    Ok(out)
}

/// `source` with its `//#unroll` blocks repeated (see the module's documentation).
fn unroll(source: &str) -> Result<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut constants = HashMap::new();
    let mut out = String::with_capacity(source.len());
    unroll_lines(&lines, 0, &mut constants, &[], &mut out)?;
    Ok(out)
}

/// Appends `lines` (starting at line `first` of the source) to `out` with their unroll blocks
/// repeated and each `(variable, value)` of the enclosing copies substituted; records the `const`
/// declarations it passes in `constants`.
fn unroll_lines(
    lines: &[&str],
    first: usize,
    constants: &mut HashMap<String, usize>,
    substitutions: &[(String, String)],
    out: &mut String,
) -> Result<()> {
    let bad = |line: usize, what: &str| GpuError::Validation {
        reason: format!("shader preprocessor, line {}: {what}", line + 1),
    };
    let mut i = 0;
    while i < lines.len() {
        let mut line = lines[i].to_owned();
        for (variable, value) in substitutions {
            line = line.replace(variable.as_str(), value);
        }
        let directive = line.trim_start();
        if let Some(rest) = directive.strip_prefix("//#unroll ") {
            let (variable, count) = rest
                .split_once(' ')
                .filter(|(v, _)| v.starts_with('$') && v.len() > 1)
                .ok_or_else(|| bad(first + i, "not `//#unroll $variable COUNT`"))?;
            let count = count.trim();
            let count = match count.parse::<usize>() {
                Ok(n) => n,
                Err(_) => *constants
                    .get(count)
                    .ok_or_else(|| bad(first + i, "COUNT is no number or earlier constant"))?,
            };
            // The matching end, counting nested blocks.
            let mut depth = 0;
            let end = (i + 1..lines.len())
                .find(|&j| {
                    let d = lines[j].trim_start();
                    if d.starts_with("//#unroll ") {
                        depth += 1;
                    } else if d.starts_with("//#endunroll") {
                        if depth == 0 {
                            return true;
                        }
                        depth -= 1;
                    }
                    false
                })
                .ok_or_else(|| bad(first + i, "#unroll without #endunroll"))?;
            for copy in 0..count {
                let mut inner = substitutions.to_vec();
                inner.push((variable.to_owned(), format!("{copy}u")));
                out.push_str("{\n");
                unroll_lines(&lines[i + 1..end], first + i + 1, constants, &inner, out)?;
                out.push_str("}\n");
            }
            i = end + 1;
            continue;
        }
        if directive.starts_with("//#endunroll") {
            return Err(bad(first + i, "#endunroll without #unroll"));
        }
        if let Some((name, value)) = u32_constant(directive) {
            constants.insert(name, value);
        }
        out.push_str(&line);
        out.push('\n');
        i += 1;
    }
    Ok(())
}

/// `(NAME, N)` of a line `const NAME: u32 = Nu;` (a comment may follow).
fn u32_constant(line: &str) -> Option<(String, usize)> {
    let line = line.split_once("//").map_or(line, |(code, _)| code).trim_end();
    let rest = line.strip_prefix("const ")?;
    let (name, rest) = rest.split_once(':')?;
    let value = rest.trim().strip_prefix("u32")?.trim().strip_prefix('=')?;
    let value = value.trim().strip_suffix(';')?.trim().strip_suffix('u')?;
    Some((name.trim().to_owned(), value.parse().ok()?))
}

/// The bindings of group 0 that `source` declares, in binding order: its uniform (at most one,
/// bound with a dynamic offset into the recorder's parameter arena, so that one bind group
/// serves every dispatch on the same buffers) and its storage buffers. Every kernel declares
/// them one per line, as `@group(0) @binding(N) var<uniform|storage, read|storage, read_write>`.
pub(crate) fn binding_layout(source: &str) -> Result<Vec<wgpu::BindGroupLayoutEntry>> {
    let bad = |line: &str| GpuError::Validation { reason: format!("unexpected binding: {line}") };
    let mut entries = Vec::new();
    for line in source.lines() {
        let Some(rest) = line.trim_start().strip_prefix("@group(0) @binding(") else { continue };
        let (number, rest) = rest.split_once(')').ok_or_else(|| bad(line))?;
        let binding: u32 = number.parse().map_err(|_| bad(line))?;
        let declaration = rest.trim_start();
        let ty = if declaration.starts_with("var<uniform>") {
            wgpu::BufferBindingType::Uniform
        } else if declaration.starts_with("var<storage, read>") {
            wgpu::BufferBindingType::Storage { read_only: true }
        } else if declaration.starts_with("var<storage, read_write>") {
            wgpu::BufferBindingType::Storage { read_only: false }
        } else {
            return Err(bad(line));
        };
        let uniform = ty == wgpu::BufferBindingType::Uniform;
        if binding != entries.len() as u32 || (uniform && binding != 0) {
            return Err(bad(line));
        }
        entries.push(wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: uniform,
                min_binding_size: None,
            },
            count: None,
        });
    }
    Ok(entries)
}

/// A compiled kernel: its pipeline and the layout of its bind group 0.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// Its name in the cache (profiles report device time by it).
    pub(crate) name: Arc<str>,
}

/// The kernels compiled so far, by name.
#[derive(Debug)]
pub(crate) struct Kernels {
    context: Arc<GpuContext>,
    flags: ShaderFlags,
    compiled: Mutex<HashMap<String, Arc<Kernel>>>,
}

impl Kernels {
    pub(crate) fn new(context: Arc<GpuContext>) -> Kernels {
        let features = context.info().features;
        // UMA_GPU_PORTABLE=1 takes the portable paths even where the device offers more (tests
        // of the fallback, and a way around a driver bug).
        let portable = std::env::var_os("UMA_GPU_PORTABLE").is_some_and(|v| v != "0");
        let flags = ShaderFlags {
            f16: features.shader_f16 && !portable,
            subgroups: features.subgroups && !portable,
        };
        Kernels { context, flags, compiled: Mutex::new(HashMap::new()) }
    }

    /// Kernels without f16 arithmetic or subgroups whatever the device offers (tests of the
    /// portable paths).
    #[cfg(test)]
    pub(crate) fn portable(context: Arc<GpuContext>) -> Kernels {
        let flags = ShaderFlags { f16: false, subgroups: false };
        Kernels { context, flags, compiled: Mutex::new(HashMap::new()) }
    }

    /// Whether kernels may use subgroup operations (the device has them and
    /// `UMA_GPU_PORTABLE` is not set).
    pub(crate) fn subgroups(&self) -> bool {
        self.flags.subgroups
    }

    /// The kernel `name` (entry point `main`), compiling `parts` (concatenated, preprocessed
    /// with `defines`) the first time it is asked for. `name` must say everything that makes
    /// the source differ.
    pub(crate) fn get(&self, name: &str, parts: &[&str], defines: &[&str]) -> Result<Arc<Kernel>> {
        self.get_or_build(name, || (parts.concat(), defines.to_vec()))
    }

    /// [`Kernels::get`] whose source and defines `build` makes only when `name` is not compiled
    /// yet (kernels with generated parts, looked up on every dispatch).
    pub(crate) fn get_or_build<'d>(
        &self,
        name: &str,
        build: impl FnOnce() -> (String, Vec<&'d str>),
    ) -> Result<Arc<Kernel>> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kernel) = compiled.get(name) {
            return Ok(kernel.clone());
        }
        let (source, defines) = build();
        let source = preprocess(&source, &self.flags, &defines)?;
        let kernel = Arc::new(self.compile(name, &source)?);
        compiled.insert(name.to_owned(), kernel.clone());
        Ok(kernel)
    }

    fn compile(&self, name: &str, source: &str) -> Result<Kernel> {
        let device = &self.context.device;
        let entries = binding_layout(source)?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation { reason: format!("kernel {name}: {error}") });
        }
        Ok(Kernel { pipeline, layout, name: name.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessor_keeps_the_branches_of_the_flags() {
        let source =
            "a\n//#if F16\nb\n//#if SUBGROUPS\nc\n//#else\nd\n//#endif\n//#else\ne\n//#endif\nf\n";
        let f16_only = ShaderFlags { f16: true, subgroups: false };
        assert_eq!(preprocess(source, &f16_only, &[]).unwrap(), "a\nb\nd\nf\n");
        let none = ShaderFlags { f16: false, subgroups: false };
        assert_eq!(preprocess(source, &none, &[]).unwrap(), "a\ne\nf\n");
        let both = ShaderFlags { f16: true, subgroups: true };
        assert_eq!(preprocess(source, &both, &[]).unwrap(), "a\nb\nc\nf\n");
        let defined = "//#if IN_PLACE\nx\n//#else\ny\n//#endif\n";
        assert_eq!(preprocess(defined, &none, &["IN_PLACE"]).unwrap(), "x\n");
        assert_eq!(preprocess(defined, &none, &[]).unwrap(), "y\n");
    }

    #[test]
    fn preprocessor_refuses_unbalanced_or_unknown_directives() {
        let flags = ShaderFlags { f16: false, subgroups: false };
        assert!(preprocess("//#if F16\n", &flags, &[]).is_err());
        assert!(preprocess("//#endif\n", &flags, &[]).is_err());
        assert!(preprocess("//#if not a name\n//#endif\n", &flags, &[]).is_err());
    }

    #[test]
    fn unroll_blocks_repeat_with_the_index_substituted() {
        let flags = ShaderFlags { f16: false, subgroups: false };
        let source = "const N: u32 = 2u; // two\n//#unroll $i N\n//#unroll $j 2\nf($i, $j);\n\
                      //#endunroll\n//#endunroll\nend\n";
        let copy = |i, j| format!("{{\nf({i}u, {j}u);\n}}\n");
        let expected = format!(
            "const N: u32 = 2u; // two\n{{\n{}{}}}\n{{\n{}{}}}\nend\n",
            copy(0, 0),
            copy(0, 1),
            copy(1, 0),
            copy(1, 1)
        );
        assert_eq!(preprocess(source, &flags, &[]).unwrap(), expected);
        // A count from a constant that an #if dropped, or none at all, is refused.
        let dropped = "//#if F16\nconst M: u32 = 3u;\n//#endif\n//#unroll $k M\n//#endunroll\n";
        assert!(preprocess(dropped, &flags, &[]).is_err());
        for bad in ["//#unroll $k 2\n", "//#endunroll\n", "//#unroll k 2\n//#endunroll\n"] {
            assert!(preprocess(bad, &flags, &[]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bindings_are_read_from_the_declarations() {
        let source = "@group(0) @binding(0) var<uniform> p: Params;\n\
                      @group(0) @binding(1) var<storage, read> w: array<u32>;\n\
                      @group(0) @binding(2) var<storage, read_write> out: array<f32>;\n";
        let types: Vec<_> = binding_layout(source)
            .unwrap()
            .into_iter()
            .map(|e| match e.ty {
                wgpu::BindingType::Buffer { ty, has_dynamic_offset, .. } => {
                    (ty, has_dynamic_offset)
                }
                other => panic!("not a buffer: {other:?}"),
            })
            .collect();
        use wgpu::BufferBindingType::{Storage, Uniform};
        assert_eq!(
            types,
            [
                (Uniform, true),
                (Storage { read_only: true }, false),
                (Storage { read_only: false }, false)
            ]
        );
        // Gaps, a uniform past binding 0 and other kinds of bindings are refused.
        assert!(binding_layout("@group(0) @binding(1) var<storage, read> w: array<u32>;").is_err());
        let late_uniform = "@group(0) @binding(0) var<storage, read> w: array<u32>;\n\
                            @group(0) @binding(1) var<uniform> p: Params;";
        assert!(binding_layout(late_uniform).is_err());
        assert!(binding_layout("@group(0) @binding(0) var t: texture_2d<f32>;").is_err());
    }

    #[test]
    fn f16_rounding_is_the_cpus_to_nearest_even() {
        use crate::backend::GpuBackend;
        use crate::test_support::{backend, read, values, with_pass};
        use uma_model::backend::Backend;
        let Some(backend) = backend() else { return };
        let source = "@group(0) @binding(0) var<storage, read> input: array<f32>;\n\
            @group(0) @binding(1) var<storage, read_write> output: array<u32>;\n\
            @compute @workgroup_size(64)\n\
            fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
                if id.x < arrayLength(&input) { output[id.x] = f16_bits(input[id.x]); }\n\
            }\n";
        // Every f16 value and the points halfway to its neighbours (ties: to even), just
        // around them, subnormals, overflow, infinities; then seeded values of all sizes.
        let mut inputs = Vec::new();
        for bits in (0u16..0x7c00).step_by(7) {
            let value = half::f16::from_bits(bits).to_f32();
            let next = half::f16::from_bits(bits + 1).to_f32();
            let middle = (value + next) / 2.0;
            for v in [value, middle, middle.next_up(), middle.next_down()] {
                inputs.extend([v, -v]);
            }
        }
        inputs.extend([65504.0, 65519.99, 65520.0, 1e6, f32::INFINITY, -f32::INFINITY, 1e-9]);
        inputs.extend(values(5, 1000).iter().map(|v| v * 100.0));
        let got = with_pass(backend, 1, 0, |pass| {
            let kernel = pass.kernel("f16_bits_test", &[COMMON, source], &[]).unwrap();
            let input = pass.upload_activations(&inputs, 1, inputs.len());
            let output = GpuBackend::activations(pass, 1, inputs.len());
            let groups = [inputs.len().div_ceil(64) as u32, 1, 1];
            pass.dispatch(&kernel, &(), &[input.binding(), output.binding()], groups).unwrap();
            read(pass, &output)
        });
        for (v, bits) in inputs.iter().zip(got) {
            let want = half::f16::from_f32(*v).to_bits();
            assert_eq!(bits.to_bits(), u32::from(want), "{v:e}");
        }
    }

    #[test]
    fn f16_sources_enable_the_extension() {
        let flags = ShaderFlags { f16: true, subgroups: false };
        assert!(preprocess("var x: f16;\n", &flags, &[]).unwrap().starts_with("enable f16;\n"));
    }
}
