"""sfc.pipelines."""
