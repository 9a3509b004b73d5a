//! The compute pipelines: the three WGSL shaders compiled once per preprocessor, their bind-group
//! layouts, and the bind-group entries that fill them.

use std::num::NonZeroU64;

use super::params::PARAM_WORDS;
#[cfg(feature = "testing")]
use super::params::SIGNATURE_PARAM_WORDS;

const RESAMPLE_WGSL: &str = include_str!("../../../../shaders/resample_rows.wgsl");
const TENSOR_WGSL: &str = include_str!("../../../../shaders/to_tensor.wgsl");
#[cfg(feature = "testing")]
const SIGNATURE_WGSL: &str = include_str!("../../../../shaders/signature.wgsl");
pub(super) const WORKGROUP: u32 = 8;

/// Compute pipelines and their bind-group layouts, compiled once per preprocessor.
#[derive(Debug)]
pub(super) struct Kernels {
    pub(super) resample: wgpu::ComputePipeline,
    pub(super) resample_layout: wgpu::BindGroupLayout,
    pub(super) tensor: wgpu::ComputePipeline,
    pub(super) tensor_layout: wgpu::BindGroupLayout,
    /// The scene-signature kernel (tests only: the engine computes signatures on the CPU).
    #[cfg(feature = "testing")]
    pub(super) signature: wgpu::ComputePipeline,
    #[cfg(feature = "testing")]
    pub(super) signature_layout: wgpu::BindGroupLayout,
}

fn uniform_entry(binding: u32, size: usize) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(size as u64 * 4),
        },
        count: None,
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(4),
        },
        count: None,
    }
}

impl Kernels {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let pipeline = |label: &str, source: &str, entries: &[wgpu::BindGroupLayoutEntry]| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            (pipeline, layout)
        };
        let (resample, resample_layout) = pipeline(
            "resample_rows",
            RESAMPLE_WGSL,
            &[
                uniform_entry(0, PARAM_WORDS),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
            ],
        );
        let (tensor, tensor_layout) = pipeline(
            "to_tensor",
            TENSOR_WGSL,
            &[
                uniform_entry(0, PARAM_WORDS),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
            ],
        );
        #[cfg(feature = "testing")]
        let (signature, signature_layout) = pipeline(
            "signature",
            SIGNATURE_WGSL,
            &[
                uniform_entry(0, SIGNATURE_PARAM_WORDS),
                storage_entry(1, true),
                storage_entry(2, false),
            ],
        );
        Self {
            resample,
            resample_layout,
            tensor,
            tensor_layout,
            #[cfg(feature = "testing")]
            signature,
            #[cfg(feature = "testing")]
            signature_layout,
        }
    }
}

/// The four bindings of a preprocessing kernel: parameters, input, taps, output.
pub(super) fn entries<'a>(
    params: &'a wgpu::Buffer,
    input: &'a wgpu::Buffer,
    taps: &'a wgpu::Buffer,
    output: &'a wgpu::Buffer,
) -> [wgpu::BindGroupEntry<'a>; 4] {
    let mut i = 0;
    [params, input, taps, output].map(|b| {
        i += 1;
        wgpu::BindGroupEntry {
            binding: i - 1,
            resource: b.as_entire_binding(),
        }
    })
}
