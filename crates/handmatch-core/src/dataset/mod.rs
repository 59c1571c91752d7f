//! Hand image datasets in the 11k Hands layout (`HandInfo.csv` + `Hands/*.jpg`): the loader,
//! subject-level splits, the synthetic generator and training augmentation.

pub mod augment;
pub mod folds;
pub mod hand_info;
pub mod split;
pub mod synth;
