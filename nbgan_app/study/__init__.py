"""The evaluation study of the thesis (`nbgan evaluate`): models, baselines, scores, report."""
